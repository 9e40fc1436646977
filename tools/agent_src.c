/* qmigrate migrate --to qmigrate+tls://HOST: the source side, a thin layer
 * over engine/qmig_agent.h. The engine gets the tunnel's local socket as
 * its destination QMP; the destination's memory is verified by the agent,
 * where it is (the engine's own stamp check would dump it there). */
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
#include <unistd.h>

#include <json-c/json.h>

#include "agent_src.h"
#include "cli.h"

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

/* The host's outbound limit ($QMIGRATE_MAX_OUTBOUND = N): one of N slot
 * locks, held until this process exits (the kernel drops it even after
 * kill -9); over the limit, wait our turn ("queued"). */
static void outbound_slot(void)
{
	const char *v = getenv("QMIGRATE_MAX_OUTBOUND");
	char dir[128], path[160];
	long n;
	int told = 0;

	if (!v || (n = strtol(v, NULL, 10)) <= 0)
		return;
	if (n > 1024)
		n = 1024;
	if (geteuid() == 0) {
		mkdir("/run/qmigrate", 0755);
		snprintf(dir, sizeof(dir), "/run/qmigrate/outbound");
	} else {
		snprintf(dir, sizeof(dir), "/tmp/qmigrate-outbound-%u", (unsigned)geteuid());
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST)
		die(EXIT_SETUP, "QMIGRATE_MAX_OUTBOUND: cannot create %s: %s", dir, strerror(errno));
	for (;;) {
		for (long i = 0; i < n; i++) {
			int fd;

			snprintf(path, sizeof(path), "%s/slot-%ld.lock", dir, i);
			fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
			if (fd < 0)
				die(EXIT_SETUP, "QMIGRATE_MAX_OUTBOUND: %s: %s", path, strerror(errno));
			if (flock(fd, LOCK_EX | LOCK_NB) == 0)
				return; /* kept open: the slot is ours until we exit */
			close(fd);
		}
		if (!told)
			warnx("queued: %ld outbound migration%s already run%s from this host "
			      "(QMIGRATE_MAX_OUTBOUND); waiting", n, n == 1 ? "" : "s",
			      n == 1 ? "s" : "");
		told = 1;
		usleep(200000);
	}
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
	if (!strncmp(to, "ssh://", 6))
		ssh_setup(&ao, to);
	r = qmig_agent_session_new(&sess, &ao, msg, sizeof(msg));
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
