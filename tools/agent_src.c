/* qmigrate migrate --to qmigrate+tls://HOST: the source side, a thin layer
 * over engine/qmig_agent.h. The engine gets the tunnel's local socket as
 * its destination QMP; the destination's memory is verified by the agent,
 * where it is (the engine's own stamp check would dump it there). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "agent_src.h"
#include "cli.h"
#include "job.h"

static struct qmig_agent_session *sess;
static struct json_object *held;

/* --to ssh://[USER@]HOST[:PORT]: each connection is `ssh HOST qmigrate
 * agent --stdio` ($QMIGRATE_SSH replaces "ssh", e.g. to add -i KEY;
 * $QMIGRATE_AGENT_COMMAND the remote command). */
static char ssh_target[300], ssh_port[8];
static pid_t ssh_pids[4];
static int n_ssh;
extern char **environ;

static int ssh_connect(int *rfd, int *wfd, void *ud)
{
	const char *cmd = getenv("QMIGRATE_AGENT_COMMAND");
	char sshbuf[1024], *argv[48], *save = NULL, *w;
	posix_spawn_file_actions_t fa;
	int in[2], out[2], n = 0, r;
	pid_t pid;

	if (n_ssh == 4)
		return -EMFILE;
	snprintf(sshbuf, sizeof(sshbuf), "%s", getenv("QMIGRATE_SSH") ? getenv("QMIGRATE_SSH") : "ssh");
	for (w = strtok_r(sshbuf, " ", &save); w && n < 36; w = strtok_r(NULL, " ", &save))
		argv[n++] = w;
	argv[n++] = "-T";
	argv[n++] = "-o";
	argv[n++] = "BatchMode=yes";
	if (*ssh_port) {
		argv[n++] = "-p";
		argv[n++] = ssh_port;
	}
	argv[n++] = ssh_target;
	argv[n++] = (char *)(cmd ? cmd : "qmigrate agent --stdio");
	argv[n] = NULL;
	if (pipe2(in, O_CLOEXEC) < 0)
		return -errno;
	if (pipe2(out, O_CLOEXEC) < 0) {
		close(in[0]);
		close(in[1]);
		return -errno;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, in[0], 0);
	posix_spawn_file_actions_adddup2(&fa, out[1], 1);
	r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(in[0]);
	close(out[1]);
	if (r) {
		close(in[1]);
		close(out[0]);
		return -r;
	}
	ssh_pids[n_ssh++] = pid;
	*rfd = out[0];
	*wfd = in[1];
	return 0;
}

static void ssh_reap(void)
{
	for (int i = 0; i < n_ssh; i++) {
		int st, k;

		/* Its stdin is closed: it ends by itself, soon. */
		for (k = 0; k < 100 && waitpid(ssh_pids[i], &st, WNOHANG) == 0; k++)
			usleep(50000);
		if (k == 100) {
			kill(ssh_pids[i], SIGTERM);
			waitpid(ssh_pids[i], &st, 0);
		}
	}
	n_ssh = 0;
}

static void ssh_setup(struct qmig_agent_opts *ao, const char *to)
{
	const char *h = to + 6, *colon = strrchr(h, ':');

	if (colon && !strchr(colon, ']')) {
		snprintf(ssh_port, sizeof(ssh_port), "%s", colon + 1);
		snprintf(ssh_target, sizeof(ssh_target), "%.*s", (int)(colon - h), h);
	} else {
		snprintf(ssh_target, sizeof(ssh_target), "%s", h);
	}
	if (!*ssh_target || strchr(ssh_target, '/') || *ssh_target == '-')
		die(EXIT_USAGE, "--to: '%s' is not ssh://[USER@]HOST[:PORT]", to);
	ao->connect = (struct qmig_agent_connect_cb){ssh_connect, NULL, NULL};
}

/* The host's outbound limit (--max-outbound N, or $QMIGRATE_MAX_OUTBOUND;
 * AGENT_SRC_MAX_OUTBOUND by default, 0: none): one of N slot locks in the
 * host's outbound directory, held until this process exits (the kernel
 * drops it even after kill -9); over the limit, wait our turn ("queued").
 * While it waits, and while the agent keeps it in its queue, JOBDIR/PID.queued
 * says so to `qmigrate status` on this host. */
static long max_outbound = -1;
static const char *q_to, *q_profile;
static char q_path[300];
static long long q_since_ms;

void agent_src_max_outbound(long n)
{
	max_outbound = n;
}

static long long wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* waiting_for: "outbound" (this host's limit) or "agent" (the destination
 * host's); NULL removes the file. */
static void queue_note(const char *waiting_for, long position, long limit)
{
	struct json_object *o;
	char dir[200], tmp[320];
	const char *t;
	int fd, ok;

	if (!waiting_for) {
		if (*q_path)
			unlink(q_path);
		*q_path = 0;
		return;
	}
	if (!*q_path) {
		if (job_prepare_dir(dir, sizeof(dir), tmp, sizeof(tmp)) < 0)
			return; /* status will not list it; the migration goes on */
		snprintf(q_path, sizeof(q_path), "%s/%d.queued", dir, (int)getpid());
		q_since_ms = wall_ms();
	}
	o = json_object_new_object();
	snprintf(tmp, sizeof(tmp), "%d", (int)getpid());
	json_object_object_add(o, "job", json_object_new_string(tmp));
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "status", json_object_new_string("queued"));
	json_object_object_add(o, "waiting_for", json_object_new_string(waiting_for));
	if (position > 0)
		json_object_object_add(o, "position", json_object_new_int64(position));
	if (limit > 0)
		json_object_object_add(o, "max_outbound", json_object_new_int64(limit));
	json_object_object_add(o, "to", json_object_new_string(q_to ? q_to : ""));
	json_object_object_add(o, "profile", json_object_new_string(q_profile ? q_profile : ""));
	json_object_object_add(o, "since_ms", json_object_new_int64(q_since_ms));
	snprintf(tmp, sizeof(tmp), "%s.tmp", q_path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0) {
		json_object_put(o);
		return;
	}
	t = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	ok = write(fd, t, strlen(t)) == (ssize_t)strlen(t);
	close(fd);
	if (!ok || rename(tmp, q_path) < 0)
		unlink(tmp);
	json_object_put(o);
}

static void outbound_dir(char *dir, size_t len)
{
	const char *d = getenv("QMIGRATE_OUTBOUND_DIR");

	if (d && *d) {
		snprintf(dir, len, "%s", d);
	} else if (geteuid() == 0) {
		mkdir("/run/qmigrate", 0755);
		snprintf(dir, len, "/run/qmigrate/outbound");
	} else {
		snprintf(dir, len, "/tmp/qmigrate-outbound-%u", (unsigned)geteuid());
	}
}

static void outbound_slot(void)
{
	const char *v = getenv("QMIGRATE_MAX_OUTBOUND");
	char dir[256], path[300];
	long n = max_outbound;
	int told = 0;

	if (n < 0)
		n = v && *v ? strtol(v, NULL, 10) : AGENT_SRC_MAX_OUTBOUND;
	if (n <= 0)
		return;
	if (n > 1024)
		n = 1024;
	outbound_dir(dir, sizeof(dir));
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		die(EXIT_SETUP, "--max-outbound: cannot create %s: %s", dir, strerror(errno));
	for (;;) {
		for (long i = 0; i < n; i++) {
			int fd;

			snprintf(path, sizeof(path), "%s/slot-%ld.lock", dir, i);
			fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
			if (fd < 0)
				die(EXIT_SETUP, "--max-outbound: %s: %s", path, strerror(errno));
			if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
				if (told)
					queue_note(NULL, 0, 0);
				return; /* kept open: the slot is ours until we exit */
			}
			close(fd);
		}
		if (!told) {
			/* The record for status first: once this says queued, it is there. */
			queue_note("outbound", 0, n);
			warnx("queued: %ld outbound migration%s already run%s from this host "
			      "(--max-outbound %ld); waiting", n, n == 1 ? "" : "s",
			      n == 1 ? "s" : "", n);
		}
		told = 1;
		usleep(200000);
	}
}

static void on_queued(long position, void *ud)
{
	(void)ud;
	queue_note("agent", position, 0);
}

static const char *stream_dir, *stream_host;

void agent_src_stream_tls(const char *dir, const char *hostname)
{
	stream_dir = dir;
	stream_host = hostname;
}

void agent_src_start(struct qmig_migrate_opts *o, const char *to, const char *profile,
		     const char *const *sets)
{
	struct qmig_agent_opts ao = QMIG_AGENT_OPTS_INIT;
	char msg[768] = "";
	int r;

	if (!o->src_qmp)
		die(EXIT_USAGE, "--to needs --src-qmp: the source QEMU on this host");
	if (o->dst_qmp)
		die(EXIT_USAGE, "--to: the agent launches the destination; drop --dst-qmp");
	if (!profile)
		die(EXIT_USAGE, "--to needs --profile NAME: one of the agent host's profiles");
	if (o->verify_memory)
		die(EXIT_USAGE, "--verify=memory compares both RAMs on one host; through an agent "
				"the agent verifies the destination itself");
	if (o->dst_addr || o->listen_addr || o->dst_netns)
		die(EXIT_USAGE, "--to: the agent says where the destination listens; drop "
				"--dst-addr, --listen-addr and --dst-netns");
	if (o->tls_dst_dir)
		die(EXIT_USAGE, "--to: the destination's certificates are the agent's (its --tls "
				"DIR, checked there); drop --tls-dst-dir");
	if (o->copy_storage == QMIG_COPY_STORAGE_INC)
		die(EXIT_USAGE, "--to: --copy-storage-inc needs the destination's image on the same "
				"backing image; through an agent only --copy-storage-all (the agent "
				"creates each image)");
	if (o->transport == QMIG_TRANSPORT_RELAY)
		die(EXIT_USAGE, "--to: --transport relay needs the relay's far end on the "
				"destination host, which the agent does not run yet; use the direct "
				"transport (with --tls DIR for an encrypted stream)");
	q_to = to;
	q_profile = profile;
	outbound_slot();
	ao.url = to;
	ao.tls_dir = o->tls_dir;
	ao.profile = profile;
	ao.set = sets;
	ao.src_qmp = o->src_qmp;
	ao.job_id = o->job_id;
	ao.log = (struct qmig_log_cb){cli_log, NULL, NULL};
	ao.stream_tls_dir = stream_dir;
	ao.stream_tls_hostname = stream_host;
	ao.queued = (struct qmig_agent_queued_cb){on_queued, NULL, NULL};
	ao.copy_storage = o->copy_storage;
	ao.migrate_disks = o->migrate_disks;
	if (!strncmp(to, "ssh://", 6))
		ssh_setup(&ao, to);
	r = qmig_agent_session_new(&sess, &ao, msg, sizeof(msg));
	queue_note(NULL, 0, 0);
	if (r < 0) {
		ssh_reap();
		die(EXIT_SETUP, "%s", msg);
	}
	qmig_agent_session_apply(sess, o);
	/* The agent checks the destination's memory where it is. */
	o->no_verify = 1;
}

int agent_src_active(void)
{
	return sess != NULL;
}

int agent_src_fd(void)
{
	return qmig_agent_session_get_fd(sess);
}

void agent_src_process(void)
{
	if (sess)
		qmig_agent_session_process(sess);
}

int agent_src_hold(const struct qmig_migration_event *ev)
{
	if (!sess || strcmp(ev->type, "result"))
		return 0;
	json_object_put(held);
	held = json_object_get(ev->record);
	return 1;
}

static void merge(struct json_object *rec, struct qmig_result *res, struct json_object *rep,
		  int r, const char *msg)
{
	struct json_object *v, *ag = json_object_new_object();

	json_object_object_add(ag, "job", json_object_new_string(qmig_agent_session_job(sess)));
	if (rep)
		json_object_object_add(ag, "reply", json_object_get(rep));
	if (r < 0)
		json_object_object_add(ag, "error", json_object_new_string(msg));
	if (rec) {
		json_object_object_add(rec, "via", json_object_new_string("agent"));
		json_object_object_add(rec, "agent", ag);
	} else {
		json_object_put(ag);
	}
	if (strcmp(res->status, "completed"))
		return;
	if (r < 0) {
		/* Completed, but the agent could not confirm its guest runs: the
		 * destination owns the guest all the same (the source is gone). */
		res->verified = 0;
		snprintf(res->status, sizeof(res->status), "completed-with-errors");
		snprintf(res->message, sizeof(res->message), "the agent could not confirm: %.400s",
			 msg);
	} else if (rep && json_object_object_get_ex(rep, "verified", &v) && v) {
		char *tail;

		res->verified = json_object_get_boolean(v);
		if ((v = json_object_object_get(rep, "verify_method")))
			snprintf(res->verify_method, sizeof(res->verify_method), "%s",
				 json_object_get_string(v));
		tail = strstr(res->message, ", verification skipped");
		if (tail)
			*tail = 0;
		snprintf(res->message + strlen(res->message),
			 sizeof(res->message) - strlen(res->message), "; the agent %s (%s)",
			 res->verified ? "verified the destination" : "found the destination wrong",
			 res->verify_method);
	}
	if (rec) {
		json_object_object_add(rec, "status", json_object_new_string(res->status));
		json_object_object_add(rec, "verified",
				       res->verified < 0 ? NULL : json_object_new_boolean(res->verified));
		json_object_object_add(rec, "verify_method",
				       json_object_new_string(res->verify_method));
		json_object_object_add(rec, "message", json_object_new_string(res->message));
	}
}

void agent_src_end(struct qmig_result *res, int json)
{
	struct json_object *rep = NULL;
	char msg[768] = "";
	int r;

	if (!sess)
		return;
	r = qmig_agent_session_end(sess, res, &rep, msg, sizeof(msg));
	if (r < 0)
		warnx("%s", msg);
	merge(held, res, rep, r, msg);
	if (json && held)
		printf("%s\n", json_object_to_json_string_ext(held, JSON_C_TO_STRING_PLAIN |
								  JSON_C_TO_STRING_NOSLASHESCAPE));
	else if (!json && !strcmp(res->status, "completed"))
		fprintf(stderr, "qmigrate: the agent confirms job %s: destination running, %s\n",
			qmig_agent_session_job(sess),
			res->verified == 1 ? "memory stamps verified" : "running");
	fflush(stdout);
	json_object_put(rep);
	json_object_put(held);
	held = NULL;
	qmig_agent_session_free(sess);
	sess = NULL;
	ssh_reap();
}

/* A queue note's process still runs and is a qmigrate (a reused pid is
 * not taken for it). */
static int queued_alive(int pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	if (pid <= 1 || (kill(pid, 0) < 0 && errno == ESRCH))
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	for (ssize_t i = 0; i < n; i++)
		if (!buf[i])
			buf[i] = ' ';
	buf[n] = 0;
	return strstr(buf, "qmigrate") && strstr(buf, "migrate ");
}

int agent_src_list_queued(int json)
{
	char dir[200], path[480];
	struct dirent *e;
	int listed = 0;
	DIR *d;

	job_dir(dir, sizeof(dir));
	d = opendir(dir);
	while (d && (e = readdir(d))) {
		size_t l = strlen(e->d_name);
		struct json_object *o, *v;
		long long since = 0;
		int pid;

		if (l < 8 || strcmp(e->d_name + l - 7, ".queued"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		pid = atoi(e->d_name);
		if (!queued_alive(pid)) {
			unlink(path); /* its qmigrate is gone */
			continue;
		}
		o = json_object_from_file(path);
		if (!o || !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			continue;
		}
		listed++;
		if (json_object_object_get_ex(o, "since_ms", &v) &&
		    json_object_is_type(v, json_type_int))
			since = json_object_get_int64(v);
		json_object_object_add(o, "waited_ms", json_object_new_int64(since ? wall_ms() - since
										    : 0));
		if (json) {
			puts(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
							       JSON_C_TO_STRING_NOSLASHESCAPE));
		} else {
			const char *w = json_object_get_string(json_object_object_get(o, "waiting_for"));
			const char *to = json_object_get_string(json_object_object_get(o, "to"));
			const char *pr = json_object_get_string(json_object_object_get(o, "profile"));
			int64_t lim = json_object_get_int64(json_object_object_get(o, "max_outbound"));
			int64_t pos = json_object_get_int64(json_object_object_get(o, "position"));

			if (w && !strcmp(w, "agent"))
				printf("queued job %d: to %s (profile %s) waits in the destination "
				       "agent's queue, position %lld, for %.1f s\n", pid, to ? to : "?",
				       pr ? pr : "?", (long long)pos,
				       (double)(since ? wall_ms() - since : 0) / 1000.0);
			else
				printf("queued job %d: to %s (profile %s) waits for one of this "
				       "host's %lld outbound places (--max-outbound), for %.1f s\n", pid,
				       to ? to : "?", pr ? pr : "?", (long long)lim,
				       (double)(since ? wall_ms() - since : 0) / 1000.0);
		}
		json_object_put(o);
	}
	if (d)
		closedir(d);
	return listed;
}
