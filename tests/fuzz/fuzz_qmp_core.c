/* libFuzzer: the QMP protocol core, bytes in. The first byte picks the
 * chunk size the rest is fed in (framing across reads), the second which
 * limits apply: small ones, so that the fuzzer reaches every one of them
 * (message, greeting, elements, nodes, depth, queued events). */
#include <stddef.h>
#include <stdint.h>

#include "qmig_qmp.h"

static void drain(struct qmig_qmp *q)
{
	struct qmig_qmp_msg m;
	size_t len;

	while (qmig_qmp_next(q, &m) == 1)
		qmig_qmp_msg_clear(&m);
	qmig_qmp_output(q, &len);
	qmig_qmp_output_done(q, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct qmig_qmp_limits lim = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *q;
	size_t step, off;

	if (size < 2)
		return 0;
	step = (size_t)(data[0] % 64) + 1;
	if (data[1] & 1) {
		lim.max_message = 4096;
		lim.max_greeting = 512;
		lim.max_elements = 16;
		lim.max_nodes = 256;
		lim.max_depth = 8;
		lim.max_pending_events = 4;
	}
	if (qmig_qmp_new(&q, &lim) < 0)
		return 0;
	/* Commands in flight for replies to answer (ids 1-3 before the
	 * greeting's qmp_capabilities takes 4; held until the core is ready). */
	qmig_qmp_command(q, "query-status", NULL, 0, NULL);
	qmig_qmp_command(q, "query-migrate", NULL, 0, NULL);
	qmig_qmp_command(q, "query-version", NULL, 0, NULL);
	for (off = 2; off < size; off += step) {
		size_t n = size - off < step ? size - off : step;

		if (qmig_qmp_feed(q, data + off, n) < 0)
			break;
		drain(q);
		if (qmig_qmp_state(q) == QMIG_QMP_READY && (data[off] & 0x80))
			qmig_qmp_command(q, "query-status", NULL, data[off] & 1, NULL);
	}
	qmig_qmp_eof(q);
	drain(q);
	qmig_qmp_error(q);
	qmig_qmp_free(q);
	return 0;
}
