/* An embedder's view: start two test guests with the library, then drive
 * a whole attach-mode migration from a plain poll() loop of our own, using
 * only qmig_migration_get_fd/_get_timeout/_process. Real QEMU, TCG. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "guest_util.h"
#include "qmigrate.h"


struct counts {
	int phases, samples, plans, results;
	enum qmig_phase last_phase;
};

static void on_event(const struct qmig_migration_event *ev, void *ud)
{
	struct counts *c = ud;

	if (!strcmp(ev->type, "phase"))
		c->phases++;
	else if (!strcmp(ev->type, "sample"))
		c->samples++;
	else if (!strcmp(ev->type, "plan"))
		c->plans++;
	else if (!strcmp(ev->type, "result"))
		c->results++;
	c->last_phase = ev->phase;
}

static int frees;

static void count_free(void *ud)
{
	(void)ud;
	frees++;
}

int main(void)
{
	struct qmig_vm *src = NULL, *dst = NULL;
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_migration *m = NULL;
	struct qmig_result res = QMIG_RESULT_INIT;
	struct counts counts = {0};
	char msg[512];
	int r, loops = 0;

	use_tree_guests(NULL, getenv("QMIGRATE_ACCEL"));
	r = launch_pair(&src, &dst, 128ull << 20, 32ull << 20, 20ull << 20, &o, msg, sizeof(msg));
	CHECK(r == 0, "launch: %s (%s)", strerror(-r), msg);
	o.timeout_ms = 120000;
	o.on_event = (struct qmig_migration_event_cb){on_event, &counts, count_free};
	r = qmig_migration_new(&m, &o);
	CHECK(r == 0, "qmig_migration_new: %s", strerror(-r));

	/* The embedder's own loop. */
	for (;;) {
		struct pollfd p = {qmig_migration_get_fd(m), POLLIN, 0};

		r = qmig_migration_process(m);
		if (r != 0)
			break;
		loops++;
		CHECK(poll(&p, 1, qmig_migration_get_timeout(m)) >= 0, "poll: %s",
		      strerror(errno));
	}
	CHECK(r == 1, "process returned %d", r);
	qmig_migration_result(m, &res);
	printf("status=%s loops=%d phases=%d samples=%d plans=%d engine_total_ms=%llu "
	       "guest_downtime_ms=%lld passes=%llu verified=%d\n",
	       res.status, loops, counts.phases, counts.samples, counts.plans,
	       (unsigned long long)res.engine_total_ms, (long long)res.guest_downtime_ms,
	       (unsigned long long)res.passes, res.verified);
	CHECK(!strcmp(res.status, "completed"), "status %s: %s", res.status, res.message);
	CHECK(res.verified == 1, "destination not verified: %s", res.message);
	CHECK(res.guest_downtime_ms >= 0, "no guest-observed downtime measured");
	CHECK(res.passes >= 1, "no passes");
	CHECK(counts.results == 1, "%d result events", counts.results);
	CHECK(counts.samples >= 1 && counts.plans >= 3, "too few events");
	CHECK(counts.last_phase == QMIG_PHASE_DONE, "last phase %s",
	      qmig_phase_name(counts.last_phase));
	/* The source was quit by the engine: it must be gone by now. */
	for (int i = 0; i < 100 && !qmig_vm_exited(src, NULL); i++)
		poll(NULL, 0, 50);
	CHECK(qmig_vm_exited(src, NULL) == 1, "source QEMU still running after completion");
out:
	qmig_migration_free(m);
	if (m && frees != 1) {
		fprintf(stderr, "FAIL: event callback free ran %d times\n", frees);
		failed = 1;
	}
	qmig_vm_free(src);
	qmig_vm_free(dst);
	puts(failed ? "migrate_embed: FAILED" : "migrate_embed: ok");
	return failed;
}
