/* qmp_older LISTEN-PATH QEMU-QMP-PATH CAPABILITY: a real QEMU that looks
 * like an older one lacking CAPABILITY. It relays QMP both ways, one client
 * at a time, and drops that capability from query-migrate-capabilities
 * replies. Everything else is the real QEMU's. Prints "ready". */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

static int unix_sock(const char *path, int listen_)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (listen_) {
		unlink(path);
		if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 8) < 0)
			return -1;
	} else if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		return -1;
	}
	return fd;
}

/* Rewrite one line from QEMU if it lists capabilities. */
static void relay_line(int to, char *line, const char *drop)
{
	struct json_object *o = json_tokener_parse(line), *ret, *n = NULL;
	const char *out = line;

	if (o && json_object_object_get_ex(o, "return", &ret) &&
	    json_object_is_type(ret, json_type_array) && json_object_array_length(ret) &&
	    json_object_object_get_ex(json_object_array_get_idx(ret, 0), "capability", NULL)) {
		n = json_object_new_array();
		for (size_t i = 0; i < json_object_array_length(ret); i++) {
			struct json_object *c = json_object_array_get_idx(ret, i), *name;

			json_object_object_get_ex(c, "capability", &name);
			if (strcmp(json_object_get_string(name), drop))
				json_object_array_add(n, json_object_get(c));
		}
		json_object_object_add(o, "return", n);
		out = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	}
	if (write(to, out, strlen(out)) < 0 || write(to, "\r\n", 2) < 0)
		perror("qmp_older: write");
	json_object_put(o);
}

static void serve(int cfd, const char *qemu, const char *drop)
{
	int qfd = unix_sock(qemu, 0);
	char buf[1 << 16], *line = malloc(1 << 22);
	size_t used = 0;

	if (qfd < 0 || !line) {
		close(cfd);
		free(line);
		return;
	}
	for (;;) {
		struct pollfd p[2] = {{cfd, POLLIN, 0}, {qfd, POLLIN, 0}};
		ssize_t n;

		if (poll(p, 2, -1) < 0)
			break;
		if (p[0].revents) {
			n = read(cfd, buf, sizeof(buf));
			if (n <= 0 || write(qfd, buf, (size_t)n) != n)
				break;
		}
		if (p[1].revents) {
			n = read(qfd, line + used, (1 << 22) - used - 1);
			if (n <= 0)
				break;
			used += (size_t)n;
			line[used] = 0;
			char *s = line, *nl;

			while ((nl = strchr(s, '\n'))) {
				*nl = 0;
				relay_line(cfd, s, drop);
				s = nl + 1;
			}
			used -= (size_t)(s - line);
			memmove(line, s, used);
		}
	}
	free(line);
	close(qfd);
	close(cfd);
}

int main(int argc, char **argv)
{
	int lfd;

	if (argc != 4) {
		fprintf(stderr, "usage: qmp_older LISTEN-PATH QEMU-QMP-PATH CAPABILITY\n");
		return 2;
	}
	/* A client that hangs up while QEMU is still talking must not take the
	 * relay down with it: the next client would find nobody listening. */
	signal(SIGPIPE, SIG_IGN);
	lfd = unix_sock(argv[1], 1);
	if (lfd < 0) {
		perror("qmp_older");
		return 1;
	}
	puts("ready");
	fflush(stdout);
	for (;;) {
		int cfd = accept(lfd, NULL, NULL);

		if (cfd >= 0)
			serve(cfd, argv[2], argv[3]);
	}
}
