# Options through the agent, without booting the Linux guest: storage
# copies refused with a clear error and nothing left (a profile without a
# "disks" rule, a disk over the profile's max_size, --copy-storage-inc,
# --transport relay), then multifd 4 with zlib compression, verified by the
# agent's stamp check. (The storage copy itself: agent_storage.sh.)
. tests/lib.sh
. tests/netns.sh
. tests/integration/agent_lib.sh
PROFILES="$T/profiles"
mkdir -p "$PROFILES"
mkdir -m 711 "$T/disks"
cp examples/profiles/tiny.json "$PROFILES/"
sed "s|/var/lib/qmigrate/disks|$T/disks|; s|\"64G\"|\"256M\"|" examples/profiles/linux.json \
	> "$PROFILES/linux.json"
grep -q "\"dir\": \"$T/disks\"" "$PROFILES/linux.json" || fail "linux.json has no disks.dir to point at $T/disks"
agent_setup qao

# 1. Refusals: nothing launched, no image made, the source runs on.
launch_guest t --guest tiny --mem 128M --disk 512M --accel tcg --netns "$NETNS_A"
refused() { # NAME WANT-RC WANT-TEXT OPTIONS...
	_n=$1; _rc=$2; _w=$3; shift 3
	migrate_to "$_n" "$t_qmp" --agent-tls "$C" "$@"
	[ "$MRC" = "$_rc" ] || fail "$_n: exit $MRC, expected $_rc: $(cat "$T/$_n.err")"
	grep -q "$_w" "$T/$_n.err" || fail "$_n: no '$_w' in: $(cat "$T/$_n.err")"
	echo "$_n: $(grep -m1 "$_w" "$T/$_n.err")"
	[ "$(status_of "$t_qmp")" = running ] || fail "$_n: the source is not running"
	[ -z "$(ls "$T/disks")" ] || fail "$_n: an image was left: $(ls "$T/disks")"
	assert_clean "$_n"
}
refused no-rule 3 "allows no disk copies" --profile tiny --copy-storage-all
grep -q '"op":"prepare","job":"[^"]*","result":"not-allowed"' "$T/agent.log" ||
	fail "no-rule: no audit line"
refused too-big 3 "over profile 'linux''s max_size" --profile linux --copy-storage-all
refused inc 2 "only --copy-storage-all" --profile linux --copy-storage-inc
refused relay 2 "transport relay" --profile tiny --transport relay
ok "disk copies refused by a profile without a disks rule and over max_size; -inc and relay refused by the source"

# 2. multifd 4 with zlib compression, through the agent (a guest without
# a disk: the tiny profile's destination has none).
# zlib costs CPU: a small working set written slowly converges even on a
# loaded host; migrated once it has been written whole (generation 2).
launch_guest z --guest tiny --mem 64M --wss 8M --dirty-rate 1M --accel tcg --netns "$NETNS_A"
wait_gen "$z_log" 2 60 || fail "compress: the guest did not write its working set: $(tail -2 "$z_log")"
migrate_to z "$z_qmp" --profile tiny --agent-tls "$C" --multifd 4 --compress zlib
res=$(tail -1 "$T/z.jsonl"); echo "compress: exit $MRC: $res" | cut -c1-300
[ $MRC = 0 ] || fail "compress: exit $MRC: $(tail -5 "$T/z.err")"
[ "$(jf verified "$res")" = true ] || fail "compress: not verified"
[ "$(jf verify_method "$res")" = stamps ] || fail "compress: not verified by stamps"
[ "$(grep -c '"multifd-compression":"zlib"' "$T/z.jsonl")" -ge 2 ] ||
	fail "compress: zlib not set on both QEMUs"
dq=$(ls "$STATE"/vm-*/qmp.sock)
$QMIGRATE qmp "$dq" quit > /dev/null || fail "compress: could not quit the destination"
wait_no_dst 10 || fail "compress: destination did not quit"
rm -rf "$STATE"/vm-*
assert_clean "compress"
ok "multifd 4 with zlib compression through the agent, verified by the agent's stamp check"
