/* qmigrate agent: the destination host's daemon. It listens for sources
 * (mutual TLS, or one connection on stdin/stdout for ssh), launches the
 * incoming QEMU from a host profile, relays its QMP to the source and
 * applies the ownership rule on its own when a source goes away. One
 * thread per connection; the shared state is struct agent. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <dirent.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include "agent.h"
#include "agent_src.h"
#include "cli.h"
#include "qm_wait.h"

#define MS 1000000LL

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate agent --profiles DIR --tls DIR [--listen ADDR[:PORT]] [OPTIONS]\n"
		"       qmigrate agent --stdio --profiles DIR [OPTIONS]\n"
		"       qmigrate agent --recover --profiles DIR [--state DIR]\n"
		"       qmigrate agent --status qmigrate+tls://HOST[:PORT] --tls DIR\n"
		"\n"
		"The destination host's daemon: sources connect with\n"
		"'qmigrate migrate --src-qmp SOCK --to qmigrate+tls://HOST[:PORT] --profile NAME';\n"
		"the agent launches the incoming QEMU from a host profile (never from a\n"
		"command line sent over the network), relays its QMP to the source and\n"
		"removes a destination that never ran when the source goes away.\n"
		"Protocol: docs/PROTOCOL.md.\n"
		"\n"
		"  --listen ADDR[:PORT]   control address (default 0.0.0.0:%d)\n"
		"  --tls DIR              ca-cert.pem, server-cert.pem, server-key.pem\n"
		"                         (qmigrate tls init); clients must present a\n"
		"                         certificate signed by that CA\n"
		"  --allow SUBJECT        accept only clients whose certificate's CN (or\n"
		"                         whole subject, /CN=...) is SUBJECT; repeatable\n"
		"  --profiles DIR         host profiles, one NAME.json each (examples/profiles)\n"
		"  --state DIR            job journals and destination runtime dirs\n"
		"                         (default /run/qmigrate/agent as root)\n"
		"  --max-inbound N        concurrent inbound migrations (default 2); more\n"
		"                         wait in a queue with status \"queued\"\n"
		"  --max-connections N    concurrent control connections (default 64)\n"
		"  --idle-timeout SECS    close a connection idle this long (default 30)\n"
		"  --queue-timeout SECS   longest wait in the queue (default 600)\n"
		"  --port-range LO-HI     migration ports to hand out (default 49152-49215)\n"
		"  --port-lock-dir DIR    port lock files (default: the transport's)\n"
		"  --max-bandwidth RATE   the most one inbound migration may use (e.g. 1gbit);\n"
		"                         the source lowers its max-bandwidth to it\n"
		"  --status URL           ask the agent at URL for its jobs and queue (JSON;\n"
		"                         --tls DIR holds this host's client certificate)\n"
		"  --recover              apply the ownership rule to the jobs a killed agent\n"
		"                         left in --state (also done at every start), then exit\n"
		"  --stdio                serve one connection on stdin/stdout (for ssh)\n"
		"  --audit FILE           append the audit lines here (default stderr)\n",
		QMIG_AGENT_PORT_DEFAULT);
}

struct thr {
	struct agent *a;
	struct qm_aconn c;
	int fd;
};

static void *conn_main(void *arg)
{
	struct thr *t = arg;
	struct agent *a = t->a;
	int r;

	r = qm_aconn_tls(&t->c, a->cfg.ctx, t->fd, 1, NULL,
			 qm_wait_now_ns() + (int64_t)a->cfg.idle_ms * MS);
	if (r < 0) {
		agent_audit(a, "-", "connect", NULL, "tls-refused", t->c.err);
	} else {
		agent_serve(a, &t->c);
	}
	qm_aconn_close(&t->c);
	pthread_mutex_lock(&a->lock);
	a->conns--;
	pthread_mutex_unlock(&a->lock);
	free(t);
	return NULL;
}

void agent_state_default(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (geteuid() == 0)
		snprintf(buf, len, "/run/qmigrate/agent");
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/qmigrate-agent", xdg);
	else
		snprintf(buf, len, "/tmp/qmigrate-agent-%u", (unsigned)geteuid());
}

static int state_dir(char *buf, size_t len, const char *given)
{
	char jobs[PATH_MAX + 8];

	if (given)
		snprintf(buf, len, "%s", given);
	else
		agent_state_default(buf, len);
	if (!given && geteuid() == 0)
		mkdir("/run/qmigrate", 0755);
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return -errno;
	snprintf(jobs, sizeof(jobs), "%s/jobs", buf);
	if (mkdir(jobs, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int cmd_agent(int argc, char **argv)
{
	enum { O_LISTEN = 256, O_TLS, O_ALLOW, O_PROF, O_STATE, O_MAXIN, O_MAXC, O_IDLE, O_QT,
	       O_RANGE, O_LOCK, O_STDIO, O_AUDIT, O_HELP, O_BW, O_RECOVER, O_QUERY };
	static const struct option lo[] = {
		{"listen", 1, 0, O_LISTEN}, {"tls", 1, 0, O_TLS}, {"allow", 1, 0, O_ALLOW},
		{"profiles", 1, 0, O_PROF}, {"state", 1, 0, O_STATE},
		{"max-inbound", 1, 0, O_MAXIN}, {"max-connections", 1, 0, O_MAXC},
		{"idle-timeout", 1, 0, O_IDLE}, {"queue-timeout", 1, 0, O_QT},
		{"port-range", 1, 0, O_RANGE}, {"port-lock-dir", 1, 0, O_LOCK},
		{"stdio", 0, 0, O_STDIO}, {"audit", 1, 0, O_AUDIT}, {"help", 0, 0, O_HELP},
		{"max-bandwidth", 1, 0, O_BW}, {"recover", 0, 0, O_RECOVER},
		{"status", 1, 0, O_QUERY},
		{0, 0, 0, 0}};
	static struct agent a;
	const char *listen_s = NULL, *state = NULL, *audit = NULL, *query = NULL;
	char host[QMIG_HOST_MAX] = "", sdir[PATH_MAX], msg[512] = "";
	unsigned port = QMIG_AGENT_PORT_DEFAULT;
	int c, stdio = 0, recover = 0, lfd, sfd;
	struct stat st;
	sigset_t set;

	memset(&a, 0, sizeof(a));
	a.cfg.max_inbound = 2;
	a.cfg.max_conns = 64;
	a.cfg.idle_ms = 30000;
	a.cfg.queue_ms = 600000;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case O_LISTEN: listen_s = optarg; break;
		case O_TLS: a.cfg.tls_dir = optarg; break;
		case O_ALLOW:
			if (a.cfg.n_allow == AGENT_MAX_ALLOW)
				die(EXIT_USAGE, "--allow: at most %d", AGENT_MAX_ALLOW);
			a.cfg.allow[a.cfg.n_allow++] = optarg;
			break;
		case O_PROF: a.cfg.profiles_dir = optarg; break;
		case O_STATE: state = optarg; break;
		case O_MAXIN: a.cfg.max_inbound = (int)parse_long("--max-inbound", optarg, 1, 64); break;
		case O_MAXC: a.cfg.max_conns = (int)parse_long("--max-connections", optarg, 1, 1024); break;
		case O_IDLE: a.cfg.idle_ms = (int)parse_long("--idle-timeout", optarg, 1, 86400) * 1000; break;
		case O_QT: a.cfg.queue_ms = (int)parse_long("--queue-timeout", optarg, 1, 86400) * 1000; break;
		case O_RANGE: parse_port_range("--port-range", optarg, &a.cfg.port_lo, &a.cfg.port_hi); break;
		case O_LOCK: a.cfg.port_lock_dir = optarg; break;
		case O_STDIO: stdio = 1; break;
		case O_BW: a.cfg.max_bw = parse_rate("--max-bandwidth", optarg); break;
		case O_RECOVER: recover = 1; break;
		case O_QUERY: query = optarg; break;
		case O_AUDIT: audit = optarg; break;
		case 'h': case O_HELP: usage(stdout); return EXIT_OK;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (optind < argc)
		die(EXIT_USAGE, "unexpected argument '%s' (see 'qmigrate agent --help')", argv[optind]);
	if (query) {
		/* A client: what the agent at URL is doing (jobs, queue). */
		struct qmig_agent_opts ao = QMIG_AGENT_OPTS_INIT;
		struct json_object *rep = NULL;
		int r;

		ao.url = query;
		ao.tls_dir = a.cfg.tls_dir;
		ao.timeout_ms = 10000;
		r = qmig_agent_request(&ao, "status", &rep, msg, sizeof(msg));
		if (r < 0)
			die(EXIT_SETUP, "%s", msg);
		printf("%s\n", json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN));
		r = json_object_get_boolean(json_object_object_get(rep, "ok"));
		json_object_put(rep);
		return r ? EXIT_OK : EXIT_FAIL;
	}
	if (!a.cfg.profiles_dir)
		die(EXIT_USAGE, "give --profiles DIR (see examples/profiles)");
	if (stat(a.cfg.profiles_dir, &st) < 0 || !S_ISDIR(st.st_mode))
		die(EXIT_SETUP, "--profiles %s: not a directory", a.cfg.profiles_dir);
	if (!stdio && !recover && !a.cfg.tls_dir)
		die(EXIT_USAGE, "give --tls DIR: the agent only speaks mutual TLS on the network "
				"(or --stdio under ssh)");
	if (listen_s && qmig_addr_parse(listen_s, QMIG_AGENT_PORT_DEFAULT, host, sizeof(host),
					&port) < 0)
		die(EXIT_USAGE, "--listen: '%s' is not ADDR[:PORT]", listen_s);
	if (a.cfg.tls_dir) {
		if (qmig_tls_validate(a.cfg.tls_dir, NULL, QMIG_TLS_SERVER, msg, sizeof(msg)) < 0)
			die(EXIT_SETUP, "--tls %s: %s", a.cfg.tls_dir, msg);
		a.cfg.ctx = qm_agent_tls_ctx(a.cfg.tls_dir, 1, msg, sizeof(msg));
		if (!a.cfg.ctx)
			die(EXIT_SETUP, "%s", msg);
	}
	if (state_dir(sdir, sizeof(sdir), state) < 0)
		die(EXIT_SETUP, "--state %s: %s", sdir, strerror(errno));
	a.cfg.state_dir = sdir;
	a.cfg.audit = stderr;
	if (audit && !(a.cfg.audit = fopen(audit, "ae")))
		die(EXIT_SETUP, "--audit %s: %s", audit, strerror(errno));
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.cond, NULL);
	signal(SIGPIPE, SIG_IGN);
	agent_reap_stale(&a);
	if (recover)
		return EXIT_OK;
	if (stdio) {
		struct qm_aconn conn;

		/* ssh authenticated the peer; the fds are the connection. */
		fcntl(0, F_SETFL, fcntl(0, F_GETFL) | O_NONBLOCK);
		fcntl(1, F_SETFL, fcntl(1, F_GETFL) | O_NONBLOCK);
		qm_aconn_plain(&conn, 0, 1, 0);
		/* The same for each ssh connection of one client (its address),
		 * so that its tunnel matches its prepare. */
		snprintf(conn.peer, sizeof(conn.peer), "ssh:%.*s",
			 getenv("SSH_CLIENT") ? (int)strcspn(getenv("SSH_CLIENT"), " ") : 5,
			 getenv("SSH_CLIENT") ? getenv("SSH_CLIENT") : "local");
		agent_serve(&a, &conn);
		qm_aconn_close(&conn);
		return EXIT_OK;
	}
	lfd = qmig_tcp_listen(*host ? host : NULL, port, 64, msg, sizeof(msg));
	if (lfd < 0)
		die(EXIT_SETUP, "cannot listen on %s port %u: %s", *host ? host : "0.0.0.0", port,
		    *msg ? msg : strerror(-lfd));
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	fprintf(a.cfg.audit, "qmigrate agent: listening on %s port %u (profiles %s, state %s, "
			     "max inbound %d)\n", *host ? host : "0.0.0.0", port,
		a.cfg.profiles_dir, sdir, a.cfg.max_inbound);
	fflush(a.cfg.audit);
	for (;;) {
		struct pollfd p[2] = {{lfd, POLLIN, 0}, {sfd, POLLIN, 0}};
		pthread_attr_t at;
		pthread_t th;
		struct thr *t;
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!p[0].revents)
			continue;
		fd = qmig_tcp_accept(lfd, 0);
		if (fd < 0)
			continue;
		pthread_mutex_lock(&a.lock);
		if (a.conns >= a.cfg.max_conns) {
			pthread_mutex_unlock(&a.lock);
			agent_audit(&a, "-", "connect", NULL, "busy", "too many connections");
			close(fd);
			continue;
		}
		a.conns++;
		pthread_mutex_unlock(&a.lock);
		t = calloc(1, sizeof(*t));
		if (!t) {
			close(fd);
			continue;
		}
		t->a = &a;
		t->fd = fd;
		{
			/* A source host that vanishes (power, link) is noticed in
			 * about 30 s, and the ownership rule applied. */
			int on = 1, idle = 15, intvl = 5, cnt = 3;

			setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
			setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
		}
		pthread_attr_init(&at);
		pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &at, conn_main, t) != 0) {
			close(fd);
			free(t);
			pthread_mutex_lock(&a.lock);
			a.conns--;
			pthread_mutex_unlock(&a.lock);
		}
		pthread_attr_destroy(&at);
	}
	/* Jobs in flight keep their journals; destinations that run go on. */
	fprintf(a.cfg.audit, "qmigrate agent: stopping\n");
	close(lfd);
	return EXIT_OK;
}

/* One line per entry of an agent's status (a reply's "jobs", or read
 * from its state directory). */
static void print_entry(struct json_object *e, int json)
{
	int64_t n = 0;

	if (json) {
		puts(json_object_to_json_string_ext(e, JSON_C_TO_STRING_PLAIN |
						       JSON_C_TO_STRING_NOSLASHESCAPE));
		return;
	}
	printf("agent job %-24s %-9s", qm_aj_str(e, "job") ? qm_aj_str(e, "job") : "?",
	       qm_aj_str(e, "status") ? qm_aj_str(e, "status") : "?");
	if (qm_aj_int(e, "position", &n) == 0)
		printf(" position %lld", (long long)n);
	if (qm_aj_int(e, "waited_ms", &n) == 0)
		printf(" waiting %.1f s", (double)n / 1000);
	if (qm_aj_str(e, "profile"))
		printf(" profile %s", qm_aj_str(e, "profile"));
	if (qm_aj_str(e, "owner"))
		printf(" owner %s", qm_aj_str(e, "owner"));
	if (qm_aj_int(e, "port", &n) == 0)
		printf(" port %lld", (long long)n);
	if (qm_aj_str(e, "peer"))
		printf(" from %s", qm_aj_str(e, "peer"));
	if (qm_aj_str(e, "note"))
		printf(" (%s)", qm_aj_str(e, "note"));
	putchar('\n');
}

/* Entries of one subdirectory of an agent's state directory: journals
 * (jobs) or waiting prepares (queue), oldest first. */
static int list_dir(const char *state, const char *sub, struct json_object *out)
{
	char path[PATH_MAX], f[PATH_MAX + 300];
	DIR *d;
	struct dirent *e;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", state, sub);
	d = opendir(path);
	while (d && (e = readdir(d))) {
		struct json_object *o, *x;
		int64_t apid = 0;
		int alive;

		if (e->d_name[0] == '.' || !strstr(e->d_name, ".json") || strstr(e->d_name, ".tmp"))
			continue;
		snprintf(f, sizeof(f), "%s/%s", path, e->d_name);
		o = json_object_from_file(f);
		if (!o)
			continue;
		qm_aj_int(o, "agent_pid", &apid);
		alive = agent_alive(o) || apid == getpid();
		x = json_object_new_object();
		json_object_object_add(x, "job", json_object_new_string(
				       qm_aj_str(o, "job") ? qm_aj_str(o, "job") : e->d_name));
		json_object_object_add(x, "status", json_object_new_string(
				       qm_aj_str(o, "state") ? qm_aj_str(o, "state") : "?"));
		if (qm_aj_str(o, "profile"))
			json_object_object_add(x, "profile", json_object_new_string(qm_aj_str(o, "profile")));
		if (qm_aj_str(o, "owner"))
			json_object_object_add(x, "owner", json_object_new_string(qm_aj_str(o, "owner")));
		if (qm_aj_str(o, "peer"))
			json_object_object_add(x, "peer", json_object_new_string(qm_aj_str(o, "peer")));
		json_object_object_add(x, "agent_pid", json_object_new_int64(apid));
		json_object_object_add(x, "agent_alive", json_object_new_boolean(alive));
		if (!alive)
			json_object_object_add(x, "note", json_object_new_string(
					       "its agent is gone: 'qmigrate recover --agent-state' "
					       "settles it"));
		{
			int64_t since = 0;

			if (qm_aj_int(o, "since_ms", &since) == 0) {
				struct timespec ts;

				clock_gettime(CLOCK_REALTIME, &ts);
				json_object_object_add(x, "waited_ms", json_object_new_int64(
						       (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 - since));
				json_object_object_add(x, "since_ms", json_object_new_int64(since));
			}
		}
		json_object_array_add(out, x);
		json_object_put(o);
		n++;
	}
	if (d)
		closedir(d);
	return n;
}

static int by_since(const void *a, const void *b)
{
	struct json_object *const *x = a, *const *y = b;
	int64_t p = 0, q = 0;

	qm_aj_int(*x, "since_ms", &p);
	qm_aj_int(*y, "since_ms", &q);
	return p < q ? -1 : p > q;
}

int agent_cli_status(const char *url, const char *tls_dir, const char *state, int json)
{
	struct json_object *arr;
	char dir[PATH_MAX], msg[512] = "";
	int n;

	if (url) {
		struct qmig_agent_opts ao = QMIG_AGENT_OPTS_INIT;
		struct json_object *rep = NULL;
		int64_t in = 0, max = 0, q = 0;
		int r, ok;

		ao.url = url;
		ao.tls_dir = tls_dir;
		ao.timeout_ms = 10000;
		r = qmig_agent_request(&ao, "status", &rep, msg, sizeof(msg));
		if (r < 0)
			die(EXIT_SETUP, "%s", msg);
		ok = json_object_get_boolean(json_object_object_get(rep, "ok"));
		qm_aj_int(rep, "inbound", &in);
		qm_aj_int(rep, "max_inbound", &max);
		qm_aj_int(rep, "queued", &q);
		if (json) {
			puts(json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN |
								 JSON_C_TO_STRING_NOSLASHESCAPE));
		} else if (ok) {
			arr = json_object_object_get(rep, "jobs");
			printf("agent %s: %lld of %lld inbound places taken, %lld queued\n", url,
			       (long long)in, (long long)max, (long long)q);
			for (size_t i = 0; arr && i < json_object_array_length(arr); i++)
				print_entry(json_object_array_get_idx(arr, i), 0);
		} else {
			warnx("agent %s refused status: %s", url,
			      qm_aj_str(rep, "message") ? qm_aj_str(rep, "message") : "?");
		}
		json_object_put(rep);
		return ok ? EXIT_OK : EXIT_FAIL;
	}
	if (state)
		snprintf(dir, sizeof(dir), "%s", state);
	else
		agent_state_default(dir, sizeof(dir));
	if (access(dir, R_OK | X_OK) < 0)
		die(EXIT_SETUP, "agent state directory %s: %s", dir, strerror(errno));
	arr = json_object_new_array();
	n = list_dir(dir, "jobs", arr);
	{
		struct json_object *qa = json_object_new_array();
		int nq = list_dir(dir, "queue", qa);

		json_object_array_sort(qa, by_since);
		for (int i = 0; i < nq; i++) {
			struct json_object *e = json_object_get(json_object_array_get_idx(qa, (size_t)i));

			json_object_object_add(e, "position", json_object_new_int64(i + 1));
			json_object_object_del(e, "since_ms");
			json_object_array_add(arr, e);
		}
		json_object_put(qa);
		n += nq;
	}
	if (!json)
		printf("agent state %s: %d job%s\n", dir, n, n == 1 ? "" : "s");
	for (int i = 0; i < n; i++)
		print_entry(json_object_array_get_idx(arr, (size_t)i), json);
	json_object_put(arr);
	return EXIT_OK;
}

int agent_cli_recover(const char *state, int json)
{
	static struct agent a;
	char dir[PATH_MAX];
	int r;

	memset(&a, 0, sizeof(a));
	if (state)
		snprintf(dir, sizeof(dir), "%s", state);
	else
		agent_state_default(dir, sizeof(dir));
	if (access(dir, F_OK) < 0)
		return -ENOENT;
	a.cfg.state_dir = dir;
	/* The audit lines say what became of each job: JSON on stdout with
	 * --json, else on stderr like the rest of recover's messages. */
	a.cfg.audit = json ? stdout : stderr;
	pthread_mutex_init(&a.lock, NULL);
	pthread_cond_init(&a.cond, NULL);
	r = agent_reap_stale(&a);
	if (!json)
		printf("agent state %s: %s\n", dir,
		       r ? "some jobs could not be settled (see above); their journals stay"
			 : "every job a dead agent left is settled");
	return r ? -EIO : 0;
}
