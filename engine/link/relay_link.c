/* The engine's side of the relay (--transport relay): each QEMU migrates
 * over a unix socket in a private directory, and the two halves of
 * transport/relay.c carry every channel (main with its return path, each
 * multifd channel) over TCP, or TLS with the --tls certificates, between
 * them. Both halves live in this handle. The agent that would run the
 * destination half on another host does not exist yet; the destination
 * half already makes its sockets inside the destination's network
 * namespace.
 *
 * Where the halves run was chosen by what measured faster on 2 loaded
 * cores (docs/ARCHITECTURE.md, "Loop or threads"): plain, both in the
 * handle's loop (their rings in its epoll set: one fd for embedders, no
 * thread); TLS, each on a thread of its own (half_main), so encryption and
 * decryption run in parallel, and the loop is woken only for channel
 * events. A thread runs its half's non-blocking calls under the half's
 * mutex and hands channel events to the loop through an eventfd in its
 * epoll set. Either way a step waiting for a QMP reply (in its fiber)
 * never holds the stream up: at the switchover QEMU writes its last pages
 * holding its big lock and answers no QMP command until its socket drains.
 *
 * A broken channel before the hand-over fails the migration (rolled back
 * to the source); in postcopy QEMU sees its socket close, pauses, and the
 * recovery builds a fresh pair of relay halves. */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "launch/launch.h"
#include "link.h"
#include "qm_wait.h"
#include "qmig_relay.h"

#define MS 1000000LL

static const char *side_name(int i)
{
	return i == SRC ? "source" : "destination";
}

/* Directories of relays whose process died (kill -9 leaves them; the
 * job's recovery is about the QEMUs): qmigrate-relay-PID-XXXXXX, ours,
 * PID gone. They hold nothing but sockets. */
static void remove_stale(struct qmig_migration *m, const char *base)
{
	DIR *d = opendir(base);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[400], sub[700];
		struct stat st;
		struct dirent *f;
		DIR *sd;
		int pid;

		if (sscanf(e->d_name, "qmigrate-relay-%d-", &pid) != 1 || pid <= 0 ||
		    (kill(pid, 0) == 0 || errno != ESRCH))
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, e->d_name);
		if (lstat(path, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
		    !(sd = opendir(path)))
			continue;
		while ((f = readdir(sd)))
			if (strstr(f->d_name, ".sock")) {
				snprintf(sub, sizeof(sub), "%s/%s", path, f->d_name);
				unlink(sub);
			}
		closedir(sd);
		if (rmdir(path) == 0)
			qm_log(m, QMIG_LOG_INFO, "relay: removed %s, left by process %d", path, pid);
	}
	closedir(d);
}

int qm_relay_plan(struct qmig_migration *m)
{
	const char *base = getenv("XDG_RUNTIME_DIR");
	char tmpl[200];

	if (m->relay_dir[0])
		return 0;
	if (!base || !*base || access(base, W_OK) || strlen(base) > 100)
		base = "/tmp";
	remove_stale(m, base);
	snprintf(tmpl, sizeof(tmpl), "%s/qmigrate-relay-%d-XXXXXX", base, (int)getpid());
	if (!mkdtemp(tmpl))
		return qm_fail(m, -errno, "relay: cannot create a private directory in %s: %s",
			       base, strerror(errno));
	snprintf(m->relay_dir, sizeof(m->relay_dir), "%s", tmpl);
	/* QEMUs of another user (launched ones run unprivileged): the
	 * destination QEMU makes its listening sockets here, so its group may
	 * write; the source QEMU only passes through (o+x) to the socket the
	 * source half makes and hands to it (below). The directory stays ours,
	 * so that a later run may clean it up after a crash. */
	{
		uid_t uid;
		gid_t gid;

		if (m->side[DST].qmp && qm_qemu_cred(m->side[DST].qmp, &uid, &gid) == 0 &&
		    uid != geteuid() && (chown(tmpl, (uid_t)-1, gid) < 0 || chmod(tmpl, 0731) < 0))
			return qm_fail(m, -errno, "relay: cannot open %s to gid %u: %s", tmpl,
				       (unsigned)gid, strerror(errno));
	}
	snprintf(m->relay_in, sizeof(m->relay_in), "%s/in-0.sock", tmpl);
	snprintf(m->relay_out, sizeof(m->relay_out), "%s/out-0.sock", tmpl);
	return 0;
}

const char *qm_relay_in_uri(struct qmig_migration *m, char *buf, size_t len)
{
	snprintf(buf, len, "unix:%s", m->relay_in);
	return buf;
}

const char *qm_relay_out_uri(struct qmig_migration *m, char *buf, size_t len)
{
	snprintf(buf, len, "unix:%s", m->relay_out);
	return buf;
}

int qm_relay_tls_check(struct qmig_migration *m)
{
	char msg[512] = "";
	int r;

	if (!m->o.tls_dir)
		return 0;
	r = qmig_tls_validate(m->o.tls_dst_dir, m->o.tls_hostname, QMIG_TLS_SERVER, msg,
			      sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "relay TLS: destination certificates: %s", msg);
	r = qmig_tls_validate(m->o.tls_dir, NULL, QMIG_TLS_CLIENT, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "relay TLS: source certificates: %s", msg);
	r = qmig_tls_validate_pair(m->o.tls_dir, m->o.tls_dst_dir, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "relay TLS: %s", msg);
	return 0;
}

static void kick(int efd)
{
	uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0) {
		/* the counter is full: it is signalled anyway */
	}
}

struct half_arg {
	struct qmig_migration *m;
	int side;
};

/* A half's thread: wait for its ring (or the stop request), move bytes,
 * queue channel events for the loop and wake it only for those. The lock
 * is held only while the half runs; the loop takes it to read events and
 * statistics. */
static void *half_main(void *arg)
{
	struct qmig_migration *m = ((struct half_arg *)arg)->m;
	int side = ((struct half_arg *)arg)->side;
	struct qm_relay_half *h = &m->rh[side];
	struct qmig_relay_event ev;
	int efd = qmig_relay_get_fd(h->r);

	free(arg);
	for (;;) {
		int t, queued = 0, r;

		pthread_mutex_lock(&h->mu);
		if (h->stop) {
			pthread_mutex_unlock(&h->mu);
			break;
		}
		r = qmig_relay_process(h->r);
		if (r < 0 && !h->fault) {
			h->fault = r;
			snprintf(h->fault_msg, sizeof(h->fault_msg), "relay (%s half): %s",
				 side_name(side), qmig_relay_error(h->r));
			queued = 1;
		}
		while (qmig_relay_next_event(h->r, &ev)) {
			queued = 1;
			if (h->qn == (int)(sizeof(h->q) / sizeof(h->q[0]))) {
				h->lost++;
				continue;
			}
			h->q[h->qn++] = ev;
		}
		t = qmig_relay_get_timeout(h->r);
		pthread_mutex_unlock(&h->mu);
		if (queued)
			kick(m->relay_notify);
		/* On this thread's plain stack: a blocking wait (qmp/wait.c);
		 * stop_threads() wakes it through the same eventfd. */
		qm_wait_fd(efd, POLLIN, t < 0 ? 0 : qm_wait_now_ns() + (int64_t)t * MS + 1);
	}
	return NULL;
}

/* In the loop (plain relay): move what a half can move now and queue its
 * channel events. Runs in process(), outside the engine's fiber. */
static void half_turn(struct qmig_migration *m, int side)
{
	struct qm_relay_half *h = &m->rh[side];
	struct qmig_relay_event ev;
	int r;

	if (!h->r || !h->running || h->threaded)
		return;
	r = qmig_relay_process(h->r);
	if (r < 0 && !h->fault) {
		h->fault = r;
		snprintf(h->fault_msg, sizeof(h->fault_msg), "relay (%s half): %s",
			 side_name(side), qmig_relay_error(h->r));
	}
	while (qmig_relay_next_event(h->r, &ev)) {
		if (h->qn == (int)(sizeof(h->q) / sizeof(h->q[0]))) {
			h->lost++;
			continue;
		}
		h->q[h->qn++] = ev;
	}
}

static void stop_threads(struct qmig_migration *m)
{
	for (int i = 0; i < 2; i++) {
		struct qm_relay_half *h = &m->rh[i];

		if (!h->running)
			continue;
		if (h->threaded) {
			pthread_mutex_lock(&h->mu);
			h->stop = 1;
			pthread_mutex_unlock(&h->mu);
			kick(qmig_relay_get_fd(h->r));
			pthread_join(h->thread, NULL);
		} else {
			qm_unwatch_fd(m, qmig_relay_get_fd(h->r));
		}
		h->running = 0;
		h->stop = 0;
		h->threaded = 0;
	}
}

/* Where the halves run (docs/ARCHITECTURE.md, "Loop or threads"), chosen
 * by what measured faster on 2 loaded cores. Plain: in the loop, their
 * rings in the engine's epoll set (one fd for embedders, no thread).
 * TLS: a thread per half, so that encryption and decryption run in
 * parallel and the scheduler gives the relay two threads' share of a busy
 * machine; the engine's loop then wakes only for channel events. */
static int start_threads(struct qmig_migration *m)
{
	int threaded = m->o.tls_dir != NULL;

	for (int i = 0; i < 2; i++) {
		struct half_arg *a;
		int r;

		if (!threaded) {
			qm_watch_fd(m, qmig_relay_get_fd(m->rh[i].r));
			m->rh[i].running = 1;
			continue;
		}
		a = malloc(sizeof(*a));
		if (!a)
			return -ENOMEM;
		*a = (struct half_arg){m, i};
		r = pthread_create(&m->rh[i].thread, NULL, half_main, a);
		if (r) {
			free(a);
			return -r;
		}
		m->rh[i].threaded = 1;
		m->rh[i].running = 1;
	}
	return 0;
}

/* Halves in the loop may need a call without input (a rate limit
 * refilling); threads keep their own time. */
int64_t qm_relay_due_ns(const struct qmig_migration *m)
{
	int64_t due = 0;

	for (int i = 0; i < 2; i++) {
		int t;

		if (!m->rh[i].r || !m->rh[i].running || m->rh[i].threaded)
			continue;
		t = qmig_relay_get_timeout(m->rh[i].r);
		if (t >= 0 && (!due || qm_now_ns() + (int64_t)t * MS < due))
			due = qm_now_ns() + (int64_t)t * MS;
	}
	return due;
}

static void free_halves(struct qmig_migration *m)
{
	struct qmig_relay_stats st;

	stop_threads(m);
	if (m->rh[DST].r) {
		qmig_relay_get_stats(m->rh[DST].r, &st);
		m->relay_bytes_prev += st.bytes_up;
	}
	for (int i = 0; i < 2; i++) {
		qmig_relay_free(m->rh[i].r);
		m->rh[i].r = NULL;
	}
}

static int init_thread_state(struct qmig_migration *m)
{
	int n = 0;

	if (m->relay_init)
		return 0;
	m->relay_notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	for (; n < 2 && m->relay_notify >= 0; n++)
		if (pthread_mutex_init(&m->rh[n].mu, NULL))
			break;
	if (n < 2) {
		while (n-- > 0)
			pthread_mutex_destroy(&m->rh[n].mu);
		if (m->relay_notify >= 0)
			close(m->relay_notify);
		return -ENOMEM;
	}
	m->relay_init = 1;
	qm_watch_fd(m, m->relay_notify);
	return 0;
}

static void relay_record(struct qmig_migration *m, const char *what, int side,
			 const struct qmig_relay_event *ev)
{
	struct json_object *rec = json_object_new_object();

	json_object_object_add(rec, "event", json_object_new_string(what));
	json_object_object_add(rec, "half", json_object_new_string(side_name(side)));
	json_object_object_add(rec, "generation", json_object_new_int(m->relay_gen));
	if (ev) {
		json_object_object_add(rec, "channel", json_object_new_int((int)ev->channel));
		json_object_object_add(rec, "bytes_up", json_object_new_int64((int64_t)ev->bytes_up));
		json_object_object_add(rec, "bytes_down",
				       json_object_new_int64((int64_t)ev->bytes_down));
		if (ev->type == QMIG_RELAY_EV_ERROR) {
			json_object_object_add(rec, "error", json_object_new_int(ev->error));
			json_object_object_add(rec, "message", json_object_new_string(ev->message));
		}
	}
	qm_emit(m, "relay", rec, NULL);
}

static int start_pair(struct qmig_migration *m, int next_gen, unsigned preconnect);

int qm_relay_start(struct qmig_migration *m, int next_gen)
{
	return start_pair(m, next_gen, 0);
}

/* A fresh pair whose source half opens the channel ahead: QEMU 7.2's
 * source hangs in postcopy-recover if its resumed connection is closed at
 * once (a far side out of reach), so it is told to resume only once the
 * channel to the far half is up. */
int qm_relay_recover_ready(struct qmig_migration *m)
{
	if (m->relay_rec && m->relay_rec_ready) {
		m->relay_rec = 0;
		return 1;
	}
	if (m->relay_rec && !m->relay_rec_failed)
		return 0; /* still connecting */
	m->relay_rec = 1;
	m->relay_rec_ready = m->relay_rec_failed = 0;
	return start_pair(m, 1, 1) < 0 ? m->error : 0;
}

static int start_pair(struct qmig_migration *m, int next_gen, unsigned preconnect)
{
	struct qmig_relay_opts d = QMIG_RELAY_OPTS_INIT, s = QMIG_RELAY_OPTS_INIT;
	unsigned chans = (unsigned)(m->o.multifd_channels > 0 ? m->o.multifd_channels : 0) + 4;
	struct json_object *rec;
	char msg[512] = "";
	int r;

	if (m->rh[SRC].r && !next_gen)
		return 0;
	free_halves(m);
	r = init_thread_state(m);
	if (r < 0)
		return qm_fail(m, r, "relay: %s", strerror(-r));
	if (next_gen) {
		m->relay_gen++;
		snprintf(m->relay_out, sizeof(m->relay_out), "%s/out-%d.sock", m->relay_dir,
			 m->relay_gen);
	}
	d.side = QMIG_RELAY_DEST;
	d.unix_path = m->relay_in;
	d.host = m->o.listen_addr;
	d.port = m->res.port;
	d.netns = m->o.relay_dst_netns;
	d.tls_dir = m->o.tls_dir ? m->o.tls_dst_dir : NULL;
	d.max_channels = chans;
	r = qmig_relay_new(&m->rh[DST].r, &d, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "relay (destination half): %s", *msg ? msg : strerror(-r));
	s.side = QMIG_RELAY_SOURCE;
	s.unix_path = m->relay_out;
	s.host = m->o.dst_addr;
	s.port = qmig_relay_port(m->rh[DST].r);
	s.netns = m->o.relay_src_netns;
	s.tls_dir = m->o.tls_dir;
	s.tls_hostname = m->o.tls_hostname;
	s.max_channels = chans;
	s.preconnect = preconnect;
	r = qmig_relay_new(&m->rh[SRC].r, &s, msg, sizeof(msg));
	if (r < 0) {
		free_halves(m);
		return qm_fail(m, r, "relay (source half): %s", *msg ? msg : strerror(-r));
	}
	{
		uid_t uid;
		gid_t gid;

		/* The source QEMU connects here: its user must own the socket. */
		if (m->side[SRC].qmp && qm_qemu_cred(m->side[SRC].qmp, &uid, &gid) == 0 &&
		    uid != geteuid() && chown(m->relay_out, uid, gid) < 0) {
			r = -errno;
			free_halves(m);
			return qm_fail(m, r, "relay: cannot hand %s to uid %u: %s", m->relay_out,
				       (unsigned)uid, strerror(-r));
		}
	}
	r = start_threads(m);
	if (r < 0) {
		free_halves(m);
		return qm_fail(m, r, "relay: cannot start its threads: %s", strerror(-r));
	}
	rec = json_object_new_object();
	json_object_object_add(rec, "event", json_object_new_string("listening"));
	json_object_object_add(rec, "generation", json_object_new_int(m->relay_gen));
	json_object_object_add(rec, "source_socket", json_object_new_string(m->relay_out));
	json_object_object_add(rec, "destination_socket", json_object_new_string(m->relay_in));
	json_object_object_add(rec, "port", json_object_new_int((int)s.port));
	json_object_object_add(rec, "tls", json_object_new_boolean(m->o.tls_dir != NULL));
	qm_emit(m, "relay", rec, NULL);
	qm_log(m, QMIG_LOG_INFO, "relay: %s -> %s:%u%s -> %s", m->relay_out, m->o.dst_addr,
	       s.port, m->o.tls_dir ? " (TLS)" : "", m->relay_in);
	return 0;
}

/* One socket per recovery: QEMU may be told to listen again at each
 * attempt, and the halves made at an earlier attempt still connect there. */
void qm_relay_renew_in(struct qmig_migration *m)
{
	snprintf(m->relay_in, sizeof(m->relay_in), "%s/in-%d.sock", m->relay_dir,
		 m->res.recoveries + 1);
}

/* A channel broke. Before the hand-over that ends the migration (unless
 * QEMU already completed it: a channel torn down at the very end); in
 * postcopy QEMU pauses on the closed socket and the recovery takes over;
 * after the hand-over QEMU's own status decides. */
static void on_broken(struct qmig_migration *m, int side, const struct qmig_relay_event *ev)
{
	struct qmig_migrate_info mi;

	relay_record(m, "broken", side, ev);
	if (m->relay_rec)
		m->relay_rec_failed = 1;
	if (m->error || m->finished)
		return;
	if (m->res.postcopy_started) {
		qm_log(m, QMIG_LOG_WARN, "relay (%s half): %s; postcopy will recover",
		       side_name(side), ev->message);
		return;
	}
	if (m->owner != OWNER_SOURCE || m->completed || m->phase > QMIG_PHASE_PRECOPY) {
		qm_log(m, QMIG_LOG_INFO, "relay (%s half): %s", side_name(side), ev->message);
		return;
	}
	if (m->side[SRC].qmp && qmig_cmd_query_migrate(m->side[SRC].qmp, &mi) == 0 &&
	    (!strcmp(mi.status, "completed") || !strncmp(mi.status, "postcopy", 8))) {
		qm_log(m, QMIG_LOG_INFO, "relay (%s half): %s (source %s)", side_name(side),
		       ev->message, mi.status);
		return;
	}
	qm_fail(m, ev->error, "relay (%s half): %s", side_name(side), ev->message);
}

void qm_relay_pump(struct qmig_migration *m)
{
	struct qmig_relay_event q[sizeof(m->rh[0].q) / sizeof(m->rh[0].q[0])];
	char fault[sizeof(m->rh[0].fault_msg)];
	int n, lost, err;
	uint64_t junk;

	if (!m->relay_init)
		return;
	while (read(m->relay_notify, &junk, sizeof(junk)) > 0)
		;
	for (int side = 0; side < 2; side++)
		half_turn(m, side);
	for (int side = 0; side < 2; side++) {
		struct qm_relay_half *h = &m->rh[side];

		if (h->threaded)
			pthread_mutex_lock(&h->mu);
		n = h->qn;
		memcpy(q, h->q, sizeof(q[0]) * (size_t)n);
		h->qn = 0;
		lost = h->lost;
		h->lost = 0;
		err = h->fault;
		memcpy(fault, h->fault_msg, sizeof(fault));
		h->fault = 0;
		if (h->threaded)
			pthread_mutex_unlock(&h->mu);
		if (lost)
			qm_log(m, QMIG_LOG_WARN, "relay (%s half): %d channel events lost",
			       side_name(side), lost);
		if (err && !m->error && !m->finished)
			qm_fail(m, err, "%s", fault);
		for (int i = 0; i < n; i++) {
			if (q[i].type == QMIG_RELAY_EV_OPEN && side == SRC && m->relay_rec)
				m->relay_rec_ready = 1;
			if (q[i].type == QMIG_RELAY_EV_ERROR)
				on_broken(m, side, &q[i]);
			else
				relay_record(m, q[i].type == QMIG_RELAY_EV_OPEN ? "open" : "closed",
					     side, &q[i]);
		}
	}
}

void qm_relay_sample(struct qmig_migration *m, struct qmig_sample *s)
{
	struct qmig_relay_stats st;
	int64_t now = qm_now_ns();
	uint64_t bytes = m->relay_bytes_prev;

	if (!m->rh[DST].r && !m->relay_bytes_prev)
		return;
	if (m->rh[DST].r) {
		if (m->rh[DST].threaded)
			pthread_mutex_lock(&m->rh[DST].mu);
		qmig_relay_get_stats(m->rh[DST].r, &st);
		if (m->rh[DST].threaded)
			pthread_mutex_unlock(&m->rh[DST].mu);
		bytes += st.bytes_up;
	}
	s->relay_bytes = bytes;
	if (m->relay_sample_ns && now > m->relay_sample_ns && bytes >= m->relay_sample_bytes)
		s->relay_bandwidth = (uint64_t)((bytes - m->relay_sample_bytes) /
						((now - m->relay_sample_ns) / 1e9));
	m->relay_sample_ns = now;
	m->relay_sample_bytes = bytes;
}

/* Per channel: bytes each way and how long it was open, as the source
 * half saw it; and the fixed memory each channel holds. */
void qm_relay_emit(struct qmig_migration *m)
{
	struct json_object *rec, *arr;
	struct qmig_relay_stats st;

	if (!m->rh[SRC].r)
		return;
	stop_threads(m); /* the channels' last figures, and no more changes */
	qmig_relay_get_stats(m->rh[SRC].r, &st);
	rec = json_object_new_object();
	arr = json_object_new_array();
	for (unsigned c = 1; c <= st.channels_total; c++) {
		struct qmig_relay_channel_stats cs;
		struct json_object *o;
		int64_t end;

		if (qmig_relay_channel_stats(m->rh[SRC].r, c, &cs) < 0)
			continue;
		end = cs.close_ns ? cs.close_ns : qm_now_ns();
		o = json_object_new_object();
		json_object_object_add(o, "channel", json_object_new_int((int)c));
		json_object_object_add(o, "bytes_up", json_object_new_int64((int64_t)cs.bytes_up));
		json_object_object_add(o, "bytes_down", json_object_new_int64((int64_t)cs.bytes_down));
		json_object_object_add(o, "ms", json_object_new_int64((end - cs.open_ns) / MS));
		json_object_object_add(o, "error", json_object_new_int(cs.error));
		json_object_array_add(arr, o);
	}
	json_object_object_add(rec, "event", json_object_new_string("summary"));
	json_object_object_add(rec, "generation", json_object_new_int(m->relay_gen));
	json_object_object_add(rec, "bytes_up",
			       json_object_new_int64((int64_t)(m->relay_bytes_prev + st.bytes_up)));
	json_object_object_add(rec, "channels", arr);
	json_object_object_add(rec, "mem_per_channel",
			       json_object_new_int64((int64_t)st.mem_per_channel));
	json_object_object_add(rec, "tls", json_object_new_boolean(st.tls != 0));
	json_object_object_add(rec, "ktls_available", json_object_new_boolean(st.ktls_available));
	qm_emit(m, "relay", rec, NULL);
}

void qm_relay_stop(struct qmig_migration *m)
{
	char p[320];

	if (!m->relay_dir[0]) {
		free_halves(m);
		return;
	}
	/* What the halves saw last (a channel broken by the very failure
	 * that ends the migration) still goes into the record stream. */
	stop_threads(m);
	for (int i = 0; i < 2; i++) {
		struct qm_relay_half *h = &m->rh[i];
		struct qmig_relay_event ev;

		if (!h->r)
			continue;
		qmig_relay_process(h->r);
		while (qmig_relay_next_event(h->r, &ev))
			if (h->qn < (int)(sizeof(h->q) / sizeof(h->q[0])))
				h->q[h->qn++] = ev;
	}
	qm_relay_pump(m);
	qm_relay_emit(m);
	free_halves(m);
	/* The destination QEMU leaves the sockets it listened on. */
	for (int g = 0; g <= m->relay_gen + 1; g++) {
		snprintf(p, sizeof(p), "%s/in-%d.sock", m->relay_dir, g);
		unlink(p);
		snprintf(p, sizeof(p), "%s/out-%d.sock", m->relay_dir, g);
		unlink(p);
	}
	if (rmdir(m->relay_dir) < 0)
		qm_log(m, QMIG_LOG_WARN, "relay: could not remove %s: %s", m->relay_dir,
		       strerror(errno));
	m->relay_dir[0] = 0;
}

/* With the handle: the threads' mutexes and eventfds. */
void qm_relay_release(struct qmig_migration *m)
{
	qm_relay_stop(m);
	if (!m->relay_init)
		return;
	for (int i = 0; i < 2; i++)
		pthread_mutex_destroy(&m->rh[i].mu);
	qm_unwatch_fd(m, m->relay_notify);
	close(m->relay_notify);
	m->relay_init = 0;
}
