/* An embedder frees a migration handle in the middle of precopy.
 *
 * qmig_migration_free() must not run a rollback (it would block the
 * caller's loop for seconds and call back into it while it tears the
 * handle down): it unwinds, marks the job's journal abandoned, and returns.
 * The journal then shows a job with no live process, and the library's
 * recovery (what `qmigrate recover` runs) puts the guest back on the source:
 * running, with heartbeats, the destination no longer in migration. */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "guest_util.h"
#include "qmigrate.h"

static int events_after_free, freeing;

static void on_event(const struct qmig_migration_event *ev, void *ud)
{
	int *samples = ud;

	if (freeing)
		events_after_free++;
	if (!strcmp(ev->type, "sample"))
		(*samples)++;
}

static int rm_dir(const char *dir)
{
	struct qmig_job_info *jobs = NULL;
	size_t n = 0;

	if (qmig_journal_list(dir, &jobs, &n) == 0)
		for (size_t i = 0; i < n; i++)
			unlink(jobs[i].path);
	qmig_journal_list_free(jobs);
	return rmdir(dir);
}

int main(void)
{
	struct qmig_vm *src = NULL, *dst = NULL;
	struct qmig_migrate_opts o = QMIG_MIGRATE_OPTS_INIT;
	struct qmig_recover_opts ro = QMIG_RECOVER_OPTS_INIT;
	struct qmig_recover_result rr;
	struct qmig_migration *m = NULL;
	struct qmig_job_info *jobs = NULL;
	struct qmig_qmp_conn_opts co = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c = NULL;
	struct qmig_vm_status st;
	struct qmig_hb *hb = NULL;
	struct qmig_guest_stats hs = QMIG_GUEST_STATS_INIT;
	char dir[] = "/tmp/qmig-abandon.XXXXXX", msg[512];
	size_t n = 0;
	int samples = 0, r;
	int64_t t0, free_ns;

	skip_without_qemu();
	CHECK(mkdtemp(dir) != NULL, "mkdtemp: %s", strerror(errno));
	r = launch_pair(&src, &dst, 128ull << 20, 96ull << 20, 200ull << 20, &o, msg, sizeof(msg));
	CHECK(r == 0, "launch: %s (%s)", strerror(-r), msg);
	o.max_bandwidth = 8ull << 20;
	o.journal_dir = dir;
	o.job_id = "abandon";
	o.on_event = (struct qmig_migration_event_cb){on_event, &samples, NULL};
	r = qmig_migration_new(&m, &o);
	CHECK(r == 0, "qmig_migration_new: %s", strerror(-r));
	/* Into precopy, a few samples deep. */
	while (samples < 3) {
		struct pollfd p = {qmig_migration_get_fd(m), POLLIN, 0};

		r = qmig_migration_process(m);
		CHECK(r == 0, "the migration ended before it could be abandoned (%d)", r);
		CHECK(poll(&p, 1, qmig_migration_get_timeout(m)) >= 0, "poll: %s",
		      strerror(errno));
	}
	CHECK(qmig_migration_phase(m) == QMIG_PHASE_PRECOPY, "phase %s, not precopy",
	      qmig_phase_name(qmig_migration_phase(m)));
	freeing = 1;
	t0 = now_ns();
	qmig_migration_free(m);
	free_ns = now_ns() - t0;
	m = NULL;
	printf("embed_abandon: free() of a migration in precopy took %.3f ms\n", free_ns / 1e6);
	CHECK(events_after_free == 0, "%d events fired into the caller while freeing",
	      events_after_free);

	/* The journal is there, with nobody alive behind it. */
	CHECK(qmig_journal_list(dir, &jobs, &n) == 0 && n == 1, "%zu journals in %s", n, dir);
	CHECK(!strcmp(jobs[0].job, "abandon") && !jobs[0].alive,
	      "job %s alive=%d: an abandoned job must not look alive", jobs[0].job, jobs[0].alive);

	/* The source was never given up: recovery cancels and resumes it. */
	r = qmig_recover_job(dir, "abandon", &ro, &rr);
	CHECK(r == 0, "recover: %s (%s)", strerror(-r), rr.message);
	CHECK(!strcmp(rr.outcome, "rolled-back"), "outcome %s: %s", rr.outcome, rr.message);
	r = qmig_qmp_conn_open(&c, qmig_vm_qmp_path(src), &co);
	CHECK(r == 0, "source QMP: %s", strerror(-r));
	CHECK(qmig_cmd_query_status(c, &st) == 0, "query-status");
	CHECK(st.running, "source is %s after recovery", st.status);
	r = qmig_hb_open(&hb, qmig_vm_serial_path(src));
	CHECK(r == 0, "source serial: %s", strerror(-r));
	CHECK(qmig_hb_wait(hb, 5, 20000) == 0, "the source guest beats no more");
	qmig_hb_get(hb, &hs);
	CHECK(!hs.corrupt, "the source guest reports corruption: %s", hs.corrupt_msg);
	qmig_journal_list_free(jobs);
	jobs = NULL;
	CHECK(qmig_journal_list(dir, &jobs, &n) == 0 && n == 0, "%zu journals left", n);
out:
	qmig_journal_list_free(jobs);
	qmig_hb_free(hb);
	qmig_qmp_conn_close(c);
	qmig_migration_free(m);
	qmig_vm_free(src);
	qmig_vm_free(dst);
	rm_dir(dir);
	puts(failed ? "embed_abandon: FAILED" : "embed_abandon: ok");
	return failed;
}
