/* Control sockets of running migrations: JOBDIR/<pid>.sock, one line in
 * ("status" or "cancel"), one JSON line out. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

#include "job.h"
#include "qmig_migrate.h"

struct job {
	int fd;
	char path[108];
	char label[256];
};

const char *job_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");

	if (getuid() == 0)
		snprintf(buf, len, "/run/qmigrate/jobs");
	else if (xdg && *xdg)
		snprintf(buf, len, "%s/qmigrate-jobs", xdg);
	else
		snprintf(buf, len, "/tmp/qmigrate-jobs-%u", (unsigned)getuid());
	return buf;
}

static int make_dirs(const char *dir)
{
	char tmp[256];

	snprintf(tmp, sizeof(tmp), "%s", dir);
	for (char *p = tmp + 1; *p; p++)
		if (*p == '/') {
			*p = 0;
			mkdir(tmp, 0755);
			*p = '/';
		}
	if (mkdir(tmp, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int job_open(struct job **out, const char *label, char *msg, size_t len)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[200];
	struct job *j;
	int r;

	job_dir(dir, sizeof(dir));
	r = make_dirs(dir);
	if (r < 0) {
		snprintf(msg, len, "%s: %s", dir, strerror(-r));
		return r;
	}
	j = calloc(1, sizeof(*j));
	if (!j)
		return -ENOMEM;
	if ((size_t)snprintf(j->path, sizeof(j->path), "%s/%d.sock", dir, (int)getpid()) >=
	    sizeof(j->path)) {
		snprintf(msg, len, "%s: path too long for a unix socket", dir);
		free(j);
		return -ENAMETOOLONG;
	}
	snprintf(j->label, sizeof(j->label), "%s", label);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", j->path);
	unlink(j->path);
	j->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (j->fd < 0 || bind(j->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(j->fd, 4) < 0) {
		r = -errno;
		snprintf(msg, len, "%s: %s", j->path, strerror(errno));
		if (j->fd >= 0)
			close(j->fd);
		free(j);
		return r;
	}
	*out = j;
	return 0;
}

void job_close(struct job *j)
{
	if (!j)
		return;
	close(j->fd);
	unlink(j->path);
	free(j);
}

int job_fd(const struct job *j)
{
	return j ? j->fd : -1;
}

static struct json_object *status_json(struct job *j, struct qmig_migration *m)
{
	struct json_object *o = json_object_new_object();
	struct qmig_sample s;

	qmig_migration_last_sample(m, &s);
	json_object_object_add(o, "pid", json_object_new_int((int)getpid()));
	json_object_object_add(o, "job", json_object_new_string(j->label));
	json_object_object_add(o, "phase",
			       json_object_new_string(qmig_phase_name(qmig_migration_phase(m))));
	json_object_object_add(o, "status", json_object_new_string(s.status));
	json_object_object_add(o, "elapsed_ms", json_object_new_int64(s.t_ms));
	json_object_object_add(o, "pass", json_object_new_int64((int64_t)s.pass));
	json_object_object_add(o, "transferred", json_object_new_int64((int64_t)s.transferred));
	json_object_object_add(o, "remaining", json_object_new_int64((int64_t)s.remaining));
	json_object_object_add(o, "total", json_object_new_int64((int64_t)s.total));
	json_object_object_add(o, "dirty_rate", json_object_new_int64((int64_t)s.dirty_rate));
	json_object_object_add(o, "bandwidth", json_object_new_int64((int64_t)s.bandwidth));
	json_object_object_add(o, "expected_downtime_ms",
			       json_object_new_int64(s.expected_downtime_ms));
	return o;
}

void job_serve(struct job *j, struct qmig_migration *m)
{
	struct pollfd p = {.events = POLLIN};
	char req[64] = "";
	struct json_object *rep;
	const char *txt;
	ssize_t n;

	p.fd = accept4(j->fd, NULL, NULL, SOCK_CLOEXEC);
	if (p.fd < 0)
		return;
	/* A client that says nothing in 200 ms is dropped: the migration
	 * must not wait for it. */
	if (poll(&p, 1, 200) == 1 && (n = read(p.fd, req, sizeof(req) - 1)) > 0)
		req[n] = 0;
	req[strcspn(req, "\r\n")] = 0;
	rep = status_json(j, m);
	if (!strcmp(req, "cancel")) {
		qmig_migration_cancel(m);
		json_object_object_add(rep, "cancel", json_object_new_string("requested"));
	} else if (strcmp(req, "status")) {
		json_object_object_add(rep, "error", json_object_new_string("unknown request"));
	}
	txt = json_object_to_json_string_ext(rep, JSON_C_TO_STRING_PLAIN);
	if (send(p.fd, txt, strlen(txt), MSG_NOSIGNAL) < 0 ||
	    send(p.fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		/* the client went away; nothing to do */
	}
	json_object_put(rep);
	close(p.fd);
}

static char *ask(const char *path, const char *req, int *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct pollfd p = {.events = POLLIN};
	char buf[4096];
	size_t got = 0;
	ssize_t n;

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	p.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p.fd < 0 || connect(p.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		*err = -errno;
		if (p.fd >= 0)
			close(p.fd);
		return NULL;
	}
	if (send(p.fd, req, strlen(req), MSG_NOSIGNAL) < 0 ||
	    send(p.fd, "\n", 1, MSG_NOSIGNAL) < 0) {
		*err = -errno;
		close(p.fd);
		return NULL;
	}
	while (got < sizeof(buf) - 1 && poll(&p, 1, 5000) == 1 &&
	       (n = read(p.fd, buf + got, sizeof(buf) - 1 - got)) > 0)
		got += (size_t)n;
	close(p.fd);
	buf[got] = 0;
	buf[strcspn(buf, "\n")] = 0;
	if (!got) {
		*err = -ETIMEDOUT;
		return NULL;
	}
	return strdup(buf);
}

char *job_request(int pid, const char *req, char *msg, size_t len)
{
	char dir[200], path[300], found[300] = "";
	struct dirent *de;
	int n = 0, err = 0;
	DIR *d;

	job_dir(dir, sizeof(dir));
	if (pid) {
		snprintf(path, sizeof(path), "%s/%d.sock", dir, pid);
		char *rep = ask(path, req, &err);

		if (!rep)
			snprintf(msg, len, "no migration job with pid %d (%s)", pid,
				 strerror(-err));
		return rep;
	}
	d = opendir(dir);
	while (d && (de = readdir(d))) {
		if (!strstr(de->d_name, ".sock"))
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path))
			continue;
		/* A socket left by a process that died is removed. */
		if (kill(atoi(de->d_name), 0) < 0 && errno == ESRCH) {
			unlink(path);
			continue;
		}
		snprintf(found, sizeof(found), "%s", path);
		n++;
	}
	if (d)
		closedir(d);
	if (n != 1) {
		if (n > 1)
			snprintf(msg, len, "%d migrations are running: name one with --job PID",
				 n);
		else
			snprintf(msg, len, "no migration is running (no job in %s)", dir);
		return NULL;
	}
	char *rep = ask(found, req, &err);

	if (!rep)
		snprintf(msg, len, "%s: %s", found, strerror(-err));
	return rep;
}
