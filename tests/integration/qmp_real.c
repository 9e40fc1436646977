/* The QMP client against a real QEMU (-M none): handshake, a dozen real
 * commands, STOP/RESUME events, error replies, schema probing, fd passing
 * (getfd/closefd, add-fd/query-fdsets), TCP, and closing fully so the
 * monitor takes the next client. Exit 0 pass, 1 fail, 77 skipped. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_commands.h"
#include "qmig_qmp.h"

static pid_t qemu_pid = -1;
static char dir[64], sock[128];
static int checks;

static void cleanup(void)
{
	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
		qemu_pid = -1;
	}
	if (dir[0]) {
		unlink(sock);
		rmdir(dir);
		dir[0] = 0;
	}
}

static void on_signal(int sig)
{
	cleanup();
	_exit(128 + sig);
}

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		checks++;                                                               \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
			exit(1);                                                        \
		}                                                                       \
	} while (0)

static int free_tcp_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;

	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) < 0)
		return -1;
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

static void print_log(enum qmig_log_level lvl, const char *msg, void *ud)
{
	(void)ud;
	if (lvl <= QMIG_LOG_WARN)
		fprintf(stderr, "qmp: %s\n", msg);
}

static void start_qemu(int port)
{
	char qmp_unix[160], qmp_tcp[80];
	struct stat st;

	snprintf(qmp_unix, sizeof(qmp_unix), "unix:%s,server=on,wait=off", sock);
	snprintf(qmp_tcp, sizeof(qmp_tcp), "tcp:127.0.0.1:%d,server=on,wait=off", port);
	qemu_pid = fork();
	CHECK(qemu_pid >= 0, "fork: %s", strerror(errno));
	if (qemu_pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 0);
		dup2(null, 1);
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-M", "none", "-display", "none",
		       "-nodefaults", "-name", "qmp-real-test", "-qmp", qmp_unix, "-qmp", qmp_tcp,
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 6000 && stat(sock, &st) < 0; i++) {
		CHECK(waitpid(qemu_pid, NULL, WNOHANG) == 0, "QEMU exited at start");
		usleep(10000);
	}
	CHECK(stat(sock, &st) == 0, "no QMP socket after 60 s");
}

struct events {
	int stop, resume;
	int64_t last_sec;
};

static void on_event(const char *event, struct json_object *data, int64_t s, int64_t us, void *ud)
{
	struct events *e = ud;

	e->stop += !strcmp(event, "STOP");
	e->resume += !strcmp(event, "RESUME");
	e->last_sec = s;
}

static int array_has_name(struct json_object *arr, const char *name)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *n;

		if (json_object_object_get_ex(json_object_array_get_idx(arr, i), "name", &n) &&
		    !strcmp(json_object_get_string(n), name))
			return 1;
	}
	return 0;
}

static struct json_object *call(struct qmig_qmp_conn *c, const char *cmd, const char *args)
{
	struct json_object *a = args ? json_tokener_parse(args) : NULL, *ret = NULL;
	int r = qmig_qmp_conn_call(c, cmd, a, &ret, -1);

	json_object_put(a);
	CHECK(r == 0, "%s: %s", cmd, qmig_qmp_conn_error(c));
	return ret;
}

static void test_queries(struct qmig_qmp_conn *c)
{
	struct qmig_vm_status st;
	struct qmig_migrate_info mi;
	struct json_object *o, *v;
	int kvm_on = -1, kvm_present = -1;

	CHECK(qmig_cmd_query_status(c, &st) == 0, "%s", qmig_qmp_conn_error(c));
	CHECK(!strcmp(st.status, "running") && st.running, "status %s", st.status);
	o = call(c, "query-version", NULL);
	CHECK(json_object_object_get_ex(o, "qemu", &v) &&
		  json_object_get_int(json_object_object_get(v, "major")) >= 7,
	      "version");
	json_object_put(o);
	o = call(c, "query-commands", NULL);
	CHECK(array_has_name(o, "query-migrate") && array_has_name(o, "getfd"), "commands");
	json_object_put(o);
	CHECK(qmig_cmd_query_migrate(c, &mi) == 0 && !strcmp(mi.status, "none") && !mi.has_ram,
	      "query-migrate: %s", mi.status);
	CHECK(qmig_cmd_query_migrate_capabilities(c, &o) == 0, "caps");
	CHECK(json_object_object_get_ex(o, "postcopy-ram", &v) && !json_object_get_boolean(v),
	      "postcopy-ram capability off by default");
	json_object_put(o);
	o = call(c, "query-name", NULL);
	CHECK(!strcmp(json_object_get_string(json_object_object_get(o, "name")), "qmp-real-test"),
	      "name");
	json_object_put(o);
	o = call(c, "qom-list", "{\"path\": \"/\"}");
	CHECK(array_has_name(o, "machine"), "qom-list /");
	json_object_put(o);
	CHECK(qmig_cmd_query_kvm(c, &kvm_on, &kvm_present) == 0 && kvm_on == 0, "query-kvm");
}

static void test_parameters(struct qmig_qmp_conn *c)
{
	struct json_object *orig, *now, *set;

	CHECK(qmig_cmd_query_migrate_parameters(c, &orig) == 0, "%s", qmig_qmp_conn_error(c));
	CHECK(json_object_get_int64(json_object_object_get(orig, "downtime-limit")) == 300,
	      "default downtime-limit");
	set = json_tokener_parse("{\"downtime-limit\": 1234, \"max-bandwidth\": 1073741824}");
	CHECK(qmig_cmd_migrate_set_parameters(c, set) == 0, "%s", qmig_qmp_conn_error(c));
	json_object_put(set);
	CHECK(qmig_cmd_query_migrate_parameters(c, &now) == 0, "query");
	CHECK(json_object_get_int64(json_object_object_get(now, "downtime-limit")) == 1234 &&
		  json_object_get_int64(json_object_object_get(now, "max-bandwidth")) == 1073741824,
	      "round trip: %s", json_object_to_json_string(now));
	json_object_put(now);
	/* A refused value: an error reply with its class, the connection lives on. */
	set = json_tokener_parse("{\"multifd-channels\": 0}");
	CHECK(qmig_cmd_migrate_set_parameters(c, set) == -EREMOTEIO, "multifd-channels 0");
	CHECK(!strcmp(qmig_qmp_conn_error_class(c), "GenericError"), "class %s",
	      qmig_qmp_conn_error_class(c));
	json_object_put(set);
	/* restore */
	set = json_tokener_parse("{}");
	json_object_object_add(set, "downtime-limit",
			       json_object_get(json_object_object_get(orig, "downtime-limit")));
	CHECK(qmig_cmd_migrate_set_parameters(c, set) == 0, "restore");
	json_object_put(set);
	json_object_put(orig);
}

static void test_events(struct qmig_qmp_conn *c)
{
	struct events ev = {0, 0, 0};
	struct qmig_qmp_event_cb cb = {on_event, &ev, NULL};
	struct qmig_vm_status st;

	CHECK(qmig_qmp_conn_set_event_cb(c, &cb) == 0, "set cb");
	CHECK(qmig_cmd_stop(c) == 0, "stop: %s", qmig_qmp_conn_error(c));
	CHECK(qmig_cmd_query_status(c, &st) == 0 && !strcmp(st.status, "paused"), "paused");
	CHECK(ev.stop == 1, "STOP event: %d", ev.stop);
	CHECK(ev.last_sec > 1600000000, "event timestamp %lld", (long long)ev.last_sec);
	CHECK(qmig_cmd_cont(c) == 0, "cont");
	CHECK(qmig_cmd_query_status(c, &st) == 0 && st.running, "running again");
	CHECK(ev.resume == 1, "RESUME event: %d", ev.resume);
	CHECK(qmig_qmp_conn_process(c) == 0, "process");
	CHECK(qmig_qmp_conn_set_event_cb(c, NULL) == 0, "clear cb");
}

static void test_errors(struct qmig_qmp_conn *c)
{
	CHECK(qmig_qmp_conn_call(c, "no-such-command", NULL, NULL, -1) == -EREMOTEIO, "unknown");
	CHECK(!strcmp(qmig_qmp_conn_error_class(c), "CommandNotFound"), "class %s",
	      qmig_qmp_conn_error_class(c));
	CHECK(strstr(qmig_qmp_conn_error(c), "no-such-command") != NULL, "desc %s",
	      qmig_qmp_conn_error(c));
	CHECK(qmig_cmd_migrate_incoming(c, "tcp:127.0.0.1:1") == -EREMOTEIO,
	      "migrate-incoming without -incoming defer");
}

static void test_schema(struct qmig_qmp_conn *c)
{
	struct qmig_schema *s = NULL;

	CHECK(qmig_schema_probe(&s, c) == 0, "probe: %s", qmig_qmp_conn_error(c));
	CHECK(qmig_schema_has_capability(s, "postcopy-ram"), "postcopy-ram");
	CHECK(qmig_schema_has_capability(s, "multifd"), "multifd");
	CHECK(!qmig_schema_has_capability(s, "no-such-cap"), "no-such-cap");
	CHECK(qmig_schema_has_parameter(s, "multifd-channels"), "multifd-channels");
	CHECK(qmig_schema_has_command(s, "query-migrate"), "query-migrate");
	CHECK(qmig_schema_has_event(s, "MIGRATION"), "MIGRATION");
	CHECK(qmig_schema_has_arg(s, "migrate", "uri"), "migrate uri");
	CHECK(qmig_schema_has_enum_value(s, "calc-dirty-rate", "mode", "page-sampling"),
	      "page-sampling");
	qmig_schema_free(s);
}

static int count_fdsets(struct qmig_qmp_conn *c, int64_t id)
{
	struct json_object *o = call(c, "query-fdsets", NULL), *fds;
	int n = -1;

	for (size_t i = 0; i < json_object_array_length(o); i++) {
		struct json_object *e = json_object_array_get_idx(o, i);

		if (json_object_get_int64(json_object_object_get(e, "fdset-id")) == id &&
		    json_object_object_get_ex(e, "fds", &fds))
			n = (int)json_object_array_length(fds);
	}
	json_object_put(o);
	return n;
}

static void test_fds(struct qmig_qmp_conn *c)
{
	struct json_object *args;
	int p[2];
	int64_t fdset = -1, qfd = -1;

	CHECK(pipe(p) == 0, "pipe");
	CHECK(qmig_cmd_getfd(c, p[0], "test-pipe") == 0, "getfd: %s", qmig_qmp_conn_error(c));
	CHECK(qmig_cmd_closefd(c, "test-pipe") == 0, "closefd: %s", qmig_qmp_conn_error(c));
	/* gone now: proves QEMU held it under that name */
	CHECK(qmig_cmd_closefd(c, "test-pipe") == -EREMOTEIO, "second closefd");
	/* getfd without an fd attached is refused by QEMU */
	args = json_tokener_parse("{\"fdname\": \"x\"}");
	CHECK(qmig_qmp_conn_call(c, "getfd", args, NULL, -1) == -EREMOTEIO, "getfd without fd");
	json_object_put(args);
	CHECK(qmig_cmd_add_fd(c, p[1], 7, &fdset, &qfd) == 0, "add-fd: %s", qmig_qmp_conn_error(c));
	CHECK(fdset == 7 && qfd > 2, "add-fd returned %lld %lld", (long long)fdset, (long long)qfd);
	CHECK(count_fdsets(c, 7) == 1, "query-fdsets shows fdset 7 with one fd");
	CHECK(qmig_cmd_remove_fd(c, 7) == 0, "remove-fd");
	CHECK(count_fdsets(c, 7) == -1, "fdset 7 gone");
	CHECK(fcntl(p[0], F_GETFD) >= 0 && fcntl(p[1], F_GETFD) >= 0, "our fds stay ours");
	close(p[0]);
	close(p[1]);
}

int main(void)
{
	struct qmig_qmp_conn_opts o = QMIG_QMP_CONN_OPTS_INIT;
	struct qmig_qmp_conn *c = NULL, *c2 = NULL;
	char tcp[64];
	int port, r;

	if (system("command -v qemu-system-x86_64 >/dev/null 2>&1") != 0) {
		printf("skipped: qemu-system-x86_64 not installed\n");
		return 77;
	}
	snprintf(dir, sizeof(dir), "/tmp/qmig-qmpreal.XXXXXX");
	CHECK(mkdtemp(dir) != NULL, "mkdtemp");
	snprintf(sock, sizeof(sock), "%s/qmp.sock", dir);
	atexit(cleanup);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	port = free_tcp_port();
	CHECK(port > 0, "no free port");
	start_qemu(port);

	/* A bound, not a goal: a loaded machine may take seconds to answer. */
	o.timeout_ms = 60000;
	o.log = (struct qmig_log_cb){print_log, NULL, NULL};
	CHECK(qmig_qmp_conn_open(&c, sock, &o) == 0, "open %s", sock);
	CHECK(qmig_qmp_qemu_version(qmig_qmp_conn_core(c)) >= 70000, "greeting version");
	CHECK(qmig_qmp_has_oob(qmig_qmp_conn_core(c)), "oob negotiated");
	test_queries(c);
	test_parameters(c);
	test_events(c);
	test_errors(c);
	test_schema(c);
	test_fds(c);

	/* Closed fully, the monitor serves the next client: a connection left
	 * half open would keep it, and the next one would get no greeting. */
	qmig_qmp_conn_close(c);
	CHECK(qmig_qmp_conn_open(&c, sock, &o) == 0, "reopen");

	snprintf(tcp, sizeof(tcp), "tcp:127.0.0.1:%d", port);
	CHECK(qmig_qmp_conn_open(&c2, tcp, &o) == 0, "open %s", tcp);
	CHECK(qmig_cmd_query_status(c2, &(struct qmig_vm_status){0}) == 0, "over tcp");

	CHECK(qmig_cmd_quit(c) == 0, "quit: %s", qmig_qmp_conn_error(c));
	CHECK(waitpid(qemu_pid, NULL, 0) == qemu_pid, "QEMU exits after quit");
	qemu_pid = -1;
	r = qmig_qmp_conn_process(c2);
	for (int i = 0; i < 10 && r == 0; i++)
		r = qmig_qmp_conn_process(c2);
	CHECK(r == -ECONNRESET, "process after quit: %d %s", r, qmig_qmp_conn_error(c2));
	qmig_qmp_conn_close(c);
	qmig_qmp_conn_close(c2);
	printf("ok: %d checks against a real QEMU\n", checks);
	return 0;
}
