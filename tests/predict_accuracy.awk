# From a --trace file: the model's predicted total time at a quarter of
# the migration's actual duration, against the actual. Prints
# "actual_ms predicted_ms error_pct".
/"type":"sample"/ && /"status":"active"/ {
	match($0, /"t_ms":[0-9]+/); t = substr($0, RSTART + 7, RLENGTH - 7) + 0
	if (!t0) t0 = t
	n++; ts[n] = t - t0
	if (match($0, /"time_left_ms":-?[0-9]+/)) left[n] = substr($0, RSTART + 15, RLENGTH - 15) + 0
	else left[n] = -1
}
/"type":"result"/ { match($0, /"engine_total_ms":[0-9]+/); actual = substr($0, RSTART + 18, RLENGTH - 18) + 0 }
END {
	q = actual / 4; best = 0
	for (i = 1; i <= n; i++) if (ts[i] <= q && left[i] >= 0) best = i
	if (!best) { print actual, -1, 100; exit }
	pred = ts[best] + left[best]
	err = (pred - actual) * 100.0 / actual
	printf "%d %d %.1f\n", actual, pred, err
}
