/* libFuzzer: the trace reader of `qmigrate replay`, a --trace file in
 * (JSON lines), then what replay takes from it. */
#include <stdlib.h>
#include <string.h>

#include "../../tools/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	struct trace tr = {0};
	char err[256];
	int r = 0;

	while (p < end && !r) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *stop = nl ? nl + 1 : end;

		err[0] = 0;
		r = trace_add_line(&tr, p, (size_t)(stop - p), err, sizeof(err));
		if (r < 0 && !err[0])
			abort(); /* every refusal says why */
		p = stop;
	}
	if (!r && trace_finish(&tr, err, sizeof(err)) == 0) {
		/* times from the start, none negative */
		for (size_t i = 0; i < tr.n; i++)
			if (tr.t[i] < -TRACE_T_MAX || tr.t[i] > TRACE_T_MAX)
				abort();
		trace_cfg_int(&tr, "mem_bytes");
		trace_cfg_int(&tr, "downtime_limit_ms");
		trace_cfg_int(&tr, "postcopy");
	}
	trace_free(&tr);
	return 0;
}
