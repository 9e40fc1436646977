/* libFuzzer: the trace reader of `qmigrate replay`, a --trace file in
 * (JSON lines), then what replay does with it: the simulator fed its
 * rates (bounded to 60 simulated seconds so that a run stays short). */
#include <stdlib.h>
#include <string.h>

#include "../../tools/trace.h"
#include "qmig_policy.h"

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
		struct qmig_sim_opts o = QMIG_SIM_OPTS_INIT;
		struct qmig_sim_result res;

		o.policy = (struct qmig_policy_config)QMIG_POLICY_CONFIG_INIT;
		o.env_t_ms = tr.t;
		o.env_dirty = tr.dirty;
		o.env_bandwidth = tr.bw;
		o.env_n = tr.n;
		o.mem_bytes = trace_cfg_int(&tr, "mem_bytes") ? (uint64_t)trace_cfg_int(&tr, "mem_bytes")
							      : tr.mem;
		o.wss_bytes = (uint64_t)trace_cfg_int(&tr, "wss_bytes");
		o.downtime_limit_ms = trace_cfg_int(&tr, "downtime_limit_ms");
		o.policy.postcopy_allowed = trace_cfg_int(&tr, "postcopy") != 0;
		o.max_time_ms = 60000;
		qmig_sim_run(&o, qmig_policy_builtin(data[0] & 1 ? "predictive" : "passive"), &res);
	}
	trace_free(&tr);
	return 0;
}
