/* libFuzzer: the numbers of query-migrate, as a hostile QEMU could report
 * them, through the precopy model and every built-in policy: a sequence
 * of samples, 64 bytes each (t_ms kept monotonic, as the monitor does). */
#include <stdint.h>
#include <string.h>

#include "qmig_policy.h"

static const char *const names[] = {"passive", "nova", "kubevirt", "proxmox", "predictive"};

static uint64_t u64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmig_policy_config cfg = QMIG_POLICY_CONFIG_INIT;
	const struct qmig_policy_ops *ops;
	void *st;

	if (size < 16)
		return 0;
	/* The configuration is ours, within the command line's ranges; the
	 * samples are the QEMU's. */
	cfg.mem_bytes = u64(data) >> (18 + (data[8] & 31));
	cfg.downtime_limit_ms = 1 + (int64_t)(u64(data + 8) % 2000000);
	cfg.max_downtime_ms = 1 + (int64_t)(u64(data + 4) % 2000000);
	cfg.max_pause_ms = 1 + (int64_t)(u64(data + 2) % 86400000);
	cfg.postcopy_allowed = data[1] & 1;
	cfg.throttle_allowed = data[1] & 2;
	cfg.dirty_limit_allowed = data[1] & 4;
	ops = qmig_policy_builtin(names[data[2] % 5]);
	data += 16;
	size -= 16;
	if (ops->init(&st, &cfg) < 0)
		return 0;
	int64_t t = 0;
	for (size_t off = 0; off + 64 <= size; off += 64) {
		const uint8_t *p = data + off;
		struct qmig_policy_sample s = {0};
		struct qmig_prediction pr;
		struct qmig_action act[8];

		t += (int64_t)(u64(p) & 0xffffff);
		s.t_ms = t;
		s.pass = u64(p + 8) & 0xffff;
		s.transferred = u64(p + 16);
		s.remaining = u64(p + 24);
		s.total = s.transferred + s.remaining;
		s.dirty_rate = u64(p + 32);
		s.bandwidth = u64(p + 40);
		s.throttle_pct = p[48] % 100;
		s.downtime_limit_ms = (int64_t)(u64(p + 48) >> 8);
		s.max_bandwidth = u64(p + 56) >> (p[56] & 63);
		s.drain_rate = p[57] & 1 ? s.bandwidth * 2 : 0;
		qmig_predict(&s, &pr);
		ops->on_sample(st, &s, &pr, act, 8);
	}
	ops->free(st);
	return 0;
}
