/* QEMU 7.2 itself against the certificates qmig_tls_init() makes, and
 * qmig_tls_validate()'s verdicts against QEMU's:
 *  1. both endpoints' tls-creds-x509 objects load (verify-peer=on), and a
 *     TLS migration of an -M none machine completes over loopback with
 *     tls-hostname checked;
 *  2. each broken directory that the validator refuses is refused by QEMU
 *     too (at object creation or in the handshake), so the pre-flight check
 *     is neither too strict nor too lax: expired certificates, a CA the
 *     other side does not trust, another host name, no client certificate.
 * A tiny QMP client is inlined (json-c) so this test stands alone. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "qmig_transport.h"

static char tmp[64];
static int failures;
/* As root, QEMU runs as qmigrate's unprivileged user (as launched QEMUs
 * do), with the test's directories handed to it. */
static uid_t qemu_uid;
static gid_t qemu_gid;

#define CHECK(cond, ...)                                                   \
	do {                                                               \
		if (!(cond)) {                                             \
			printf("FAIL %s:%d: ", __FILE__, __LINE__);       \
			printf(__VA_ARGS__);                               \
			printf("\n");                                      \
			failures++;                                        \
		}                                                          \
	} while (0)

struct vm {
	pid_t pid;
	int fd;
	char sock[100], log[128];
	char buf[65536];
	size_t len;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* One JSON line from QEMU, waiting at most until deadline. */
static struct json_object *read_msg(struct vm *v, long long deadline)
{
	for (;;) {
		char *nl = memchr(v->buf, '\n', v->len);
		struct pollfd p = {.fd = v->fd, .events = POLLIN};
		ssize_t n;

		if (nl) {
			struct json_object *o;

			*nl = 0;
			o = json_tokener_parse(v->buf);
			v->len -= (size_t)(nl + 1 - v->buf);
			memmove(v->buf, nl + 1, v->len);
			if (o)
				return o;
			continue;
		}
		if (poll(&p, 1, (int)(deadline - now_ms() > 0 ? deadline - now_ms() : 0)) != 1)
			return NULL;
		n = read(v->fd, v->buf + v->len, sizeof(v->buf) - 1 - v->len);
		if (n <= 0)
			return NULL;
		v->len += (size_t)n;
	}
}

/* Run a command; 0 and *ret (may be NULL) on success, -1 with the error's
 * desc in err otherwise. Events are skipped. */
static int qmp(struct vm *v, const char *cmd, struct json_object **ret, char *err, size_t elen)
{
	long long deadline = now_ms() + 60000; /* a bound, not a measurement */
	struct json_object *o, *x;
	size_t n = strlen(cmd);

	if (write(v->fd, cmd, n) != (ssize_t)n || write(v->fd, "\n", 1) != 1) {
		snprintf(err, elen, "write to QMP failed");
		return -1;
	}
	while ((o = read_msg(v, deadline))) {
		if (json_object_object_get_ex(o, "return", &x)) {
			if (ret)
				*ret = json_object_get(x);
			json_object_put(o);
			return 0;
		}
		if (json_object_object_get_ex(o, "error", &x)) {
			struct json_object *d;

			snprintf(err, elen, "%s", json_object_object_get_ex(x, "desc", &d) ?
						  json_object_get_string(d) : "error");
			json_object_put(o);
			return -1;
		}
		json_object_put(o);
	}
	snprintf(err, elen, "no reply to %s", cmd);
	return -1;
}

static void slurp(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, len - 1) : 0;

	buf[n > 0 ? n : 0] = 0;
	if (fd >= 0)
		close(fd);
}

static void vm_stop(struct vm *v)
{
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
	if (v->pid > 0) {
		kill(v->pid, SIGKILL);
		waitpid(v->pid, NULL, 0);
	}
	v->pid = 0;
}

/* Start QEMU with a tls-creds-x509 object. 0 when its QMP answered; -1
 * when QEMU exited (err then holds its stderr). */
static int vm_start(struct vm *v, const char *name, const char *dir, const char *endpoint,
		    char *err, size_t elen)
{
	char qmp_arg[200], obj[512];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	long long deadline = now_ms() + 60000; /* a bound, not a measurement */
	struct json_object *greeting;

	memset(v, 0, sizeof(*v));
	v->fd = -1;
	snprintf(v->sock, sizeof(v->sock), "%s/%s.qmp", tmp, name);
	snprintf(v->log, sizeof(v->log), "%s/%s.log", tmp, name);
	snprintf(qmp_arg, sizeof(qmp_arg), "unix:%s,server=on,wait=off", v->sock);
	snprintf(obj, sizeof(obj), "tls-creds-x509,id=tls0,dir=%s,endpoint=%s,verify-peer=on",
		 dir, endpoint);
	unlink(v->sock);
	v->pid = fork();
	if (v->pid == 0) {
		int fd = open(v->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		dup2(fd, 2);
		dup2(fd, 1);
		if (qemu_uid && (setgroups(0, NULL) < 0 || setgid(qemu_gid) < 0 ||
				 setuid(qemu_uid) < 0))
			_exit(126);
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-M", "none", "-display",
		       "none", "-nodefaults", "-qmp", qmp_arg, "-object", obj,
		       !strcmp(endpoint, "server") ? "-incoming" : NULL, "defer", (char *)NULL);
		_exit(127);
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", v->sock);
	while (now_ms() < deadline) {
		int status;

		if (waitpid(v->pid, &status, WNOHANG) == v->pid) {
			v->pid = 0;
			slurp(v->log, err, elen);
			return -1;
		}
		v->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (connect(v->fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			break;
		close(v->fd);
		v->fd = -1;
		usleep(20000);
	}
	greeting = v->fd >= 0 ? read_msg(v, deadline) : NULL;
	json_object_put(greeting);
	if (!greeting || qmp(v, "{\"execute\":\"qmp_capabilities\"}", NULL, err, elen) < 0) {
		snprintf(err, elen, "QEMU %s did not answer on QMP", name);
		vm_stop(v);
		return -2;
	}
	return 0;
}

static const char *status_of(struct vm *v, char *buf, size_t len)
{
	struct json_object *ret = NULL, *s;
	char err[256];

	snprintf(buf, len, "(none)");
	if (qmp(v, "{\"execute\":\"query-migrate\"}", &ret, err, sizeof(err)) == 0 &&
	    json_object_object_get_ex(ret, "status", &s))
		snprintf(buf, len, "%s", json_object_get_string(s));
	if (ret && !strcmp(buf, "failed") && json_object_object_get_ex(ret, "error-desc", &s))
		snprintf(buf, len, "failed: %s", json_object_get_string(s));
	json_object_put(ret);
	return buf;
}

/*
 * Migrate from a client-side QEMU using src_dir to a server-side QEMU using
 * dst_dir, the source checking tls-hostname. Returns 1 completed, 0 failed
 * (what in why), -1 when a QEMU refused its certificates at start.
 */
static int tls_migrate(const char *src_dir, const char *dst_dir, const char *hostname,
		       char *why, size_t wlen)
{
	struct qmig_port_opts po = QMIG_PORT_OPTS_INIT;
	struct qmig_port *port = NULL;
	struct vm src, dst;
	char cmd[512], err[512], st[512] = "", dst_st[512] = "(not asked)";
	long long deadline;
	int r = 0;

	if (vm_start(&dst, "dst", dst_dir, "server", why, wlen) < 0)
		return -1;
	if (vm_start(&src, "src", src_dir, "client", why, wlen) < 0) {
		vm_stop(&dst);
		return -1;
	}
	po.bind_addr = "127.0.0.1";
	if (qmig_port_alloc(&port, &po, err, sizeof(err)) < 0) {
		snprintf(why, wlen, "port: %s", err);
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-incoming\",\"arguments\":"
		 "{\"uri\":\"tcp:127.0.0.1:%u\"}}", qmig_port_number(port));
	if (qmp(&dst, "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
		      "{\"tls-creds\":\"tls0\"}}", NULL, err, sizeof(err)) < 0 ||
	    qmp(&dst, cmd, NULL, err, sizeof(err)) < 0) {
		snprintf(why, wlen, "destination: %s", err);
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate-set-parameters\",\"arguments\":"
		 "{\"tls-creds\":\"tls0\",\"tls-hostname\":\"%s\"}}", hostname);
	if (qmp(&src, cmd, NULL, err, sizeof(err)) < 0) {
		snprintf(why, wlen, "source: %s", err);
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "{\"execute\":\"migrate\",\"arguments\":"
		 "{\"uri\":\"tcp:127.0.0.1:%u\"}}", qmig_port_number(port));
	if (qmp(&src, cmd, NULL, err, sizeof(err)) < 0) {
		snprintf(why, wlen, "migrate: %s", err);
		goto out;
	}
	deadline = now_ms() + 20000;
	while (now_ms() < deadline) {
		status_of(&src, st, sizeof(st));
		if (!strcmp(st, "completed") || !strncmp(st, "failed", 6))
			break;
		usleep(50000);
	}
	/* With TLS 1.3 the client finishes its handshake before the server has
	 * checked the client's certificate: a small stream can be "completed"
	 * on the source while the destination refused it. Ask both. */
	while (!strcmp(st, "completed") && now_ms() < deadline) {
		status_of(&dst, dst_st, sizeof(dst_st));
		if (!strcmp(dst_st, "completed") || strcmp(dst_st, "active"))
			break;
		usleep(50000);
	}
	r = !strcmp(st, "completed") && !strcmp(dst_st, "completed");
	slurp(dst.log, err, sizeof(err));
	err[strcspn(err, "\n")] = 0;
	snprintf(why, wlen, "source %s, destination %s%s%s", st, dst_st, *err ? ": " : "", err);
out:
	qmig_port_free(port);
	vm_stop(&src);
	vm_stop(&dst);
	return r;
}

static void init_dir(const char *name, const struct qmig_tls_init_opts *o)
{
	const char *hosts[] = {"localhost", "127.0.0.1"};
	char dir[128], msg[256] = "";

	snprintf(dir, sizeof(dir), "%s/%s", tmp, name);
	if (qmig_tls_init(dir, hosts, 2, o, msg, sizeof(msg)) < 0) {
		printf("FAIL: tls init %s: %s\n", name, msg);
		exit(1);
	}
}

static const char *dir_of(const char *name)
{
	static char buf[2][128];
	static int i;

	i ^= 1;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmp, name);
	return buf[i];
}

static int validate(const char *name, const char *host, enum qmig_tls_role role)
{
	char msg[512] = "";
	int r = qmig_tls_validate(dir_of(name), host, role, msg, sizeof(msg));

	printf("  validate %s %s: %s\n", name, host ? host : "-", r ? msg : "ok");
	return r;
}

/* A directory mixing the CA of one with the host files of another. */
static void mix(const char *name, const char *ca_from, const char *rest_from)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "mkdir -p %s/%s && cp -p %s/%s/*.pem %s/%s/ && "
		 "cp -p %s/%s/ca-cert.pem %s/%s/", tmp, name, tmp, rest_from, tmp, name,
		 tmp, ca_from, tmp, name);
	if (system(cmd) != 0) {
		printf("FAIL: %s\n", cmd);
		exit(1);
	}
}

int main(void)
{
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;
	char why[2048], cmd[128];
	int r;

	if (system("command -v qemu-system-x86_64 >/dev/null") != 0) {
		printf("skipped: qemu-system-x86_64 not installed\n");
		return 77;
	}
	snprintf(tmp, sizeof(tmp), "/tmp/qmig-tls-qemu-XXXXXX");
	if (!mkdtemp(tmp))
		return 1;
	init_dir("good", NULL);
	init_dir("other", NULL);
	o.valid_from_s = -2 * 86400;
	o.valid_secs = 86400;
	init_dir("expired", &o);
	mix("wrongca", "other", "good"); /* good's certificates, other's CA */
	mix("noclient", "good", "good"); /* the same CA, no client certificate */
	snprintf(cmd, sizeof(cmd), "rm %s/noclient/client-*.pem", tmp);
	if (system(cmd) != 0)
		return 1;
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("qmigrate-qemu");

		if (pw) {
			qemu_uid = pw->pw_uid;
			qemu_gid = pw->pw_gid;
			snprintf(cmd, sizeof(cmd), "chown -R %u:%u %s", (unsigned)qemu_uid,
				 (unsigned)qemu_gid, tmp);
			if (system(cmd) != 0)
				return 1;
			printf("QEMU runs as qmigrate-qemu (uid %u)\n", (unsigned)qemu_uid);
		}
	}

	printf("-- 1. generated certificates: QEMU loads them and migrates over TLS\n");
	CHECK(validate("good", "127.0.0.1", QMIG_TLS_BOTH) == 0, "validator refused good");
	r = tls_migrate(dir_of("good"), dir_of("good"), "127.0.0.1", why, sizeof(why));
	printf("  TLS migration (tls-hostname 127.0.0.1): %s\n", why);
	CHECK(r == 1, "TLS migration with good certificates did not complete");
	r = tls_migrate(dir_of("good"), dir_of("good"), "localhost", why, sizeof(why));
	printf("  TLS migration (tls-hostname localhost): %s\n", why);
	CHECK(r == 1, "TLS migration to 'localhost' did not complete");

	printf("-- 2. expired: validator and QEMU both refuse\n");
	CHECK(validate("expired", NULL, QMIG_TLS_SERVER) == -EKEYEXPIRED, "validator");
	r = tls_migrate(dir_of("good"), dir_of("expired"), "127.0.0.1", why, sizeof(why));
	printf("  QEMU: %s\n", why);
	CHECK(r != 1, "QEMU accepted an expired server certificate");

	printf("-- 3. another host name: validator and QEMU both refuse\n");
	CHECK(validate("good", "dst.other.example", QMIG_TLS_SERVER) == -EADDRNOTAVAIL,
	      "validator");
	r = tls_migrate(dir_of("good"), dir_of("good"), "dst.other.example", why, sizeof(why));
	printf("  QEMU: %s\n", why);
	CHECK(r == 0, "QEMU migrated to a certificate for another name");

	printf("-- 4. a CA the other side does not trust\n");
	CHECK(validate("wrongca", NULL, QMIG_TLS_SERVER) == -EKEYREJECTED, "validator");
	r = tls_migrate(dir_of("other"), dir_of("good"), "127.0.0.1", why, sizeof(why));
	printf("  QEMU (source trusts another CA): %s\n", why);
	CHECK(r == 0, "QEMU migrated to a server signed by an untrusted CA");
	r = tls_migrate(dir_of("good"), dir_of("wrongca"), "127.0.0.1", why, sizeof(why));
	printf("  QEMU (server certificate not from its CA): %s\n", why);
	CHECK(r != 1, "QEMU accepted a server certificate its own CA did not sign");

	printf("-- 5. source without a client certificate, destination verify-peer=on\n");
	CHECK(validate("noclient", NULL, QMIG_TLS_CLIENT) == -ENOENT, "validator");
	r = tls_migrate(dir_of("noclient"), dir_of("good"), "127.0.0.1", why, sizeof(why));
	printf("  QEMU: %s\n", why);
	CHECK(r != 1, "QEMU migrated without a client certificate");

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmp);
	if (system(cmd) != 0)
		failures++;
	printf(failures ? "FAILED (%d)\n" : "PASS\n", failures);
	return failures ? 1 : 0;
}
