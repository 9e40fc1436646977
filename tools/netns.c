/* A pair of network namespaces joined by a veth pair (tools/netns.h), and
 * `qmigrate netns`, which gives the same to shell tests. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "netns.h"

/* Run argv (no shell); its stdout into out (if given). 0 on exit status 0. */
static int run(const char *const argv[], char *out, size_t len, int quiet)
{
	int p[2] = {-1, -1}, st;
	size_t n = 0;
	pid_t pid;

	if (out && pipe(p) < 0)
		return -errno;
	pid = fork();
	if (pid == 0) {
		if (out) {
			dup2(p[1], 1);
			close(p[0]);
			close(p[1]);
		}
		if (quiet && !freopen("/dev/null", "w", stderr))
			_exit(127);
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	if (out) {
		close(p[1]);
		while (pid > 0 && n + 1 < len) {
			ssize_t r = read(p[0], out + n, len - 1 - n);

			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			n += (size_t)r;
		}
		out[n] = 0;
		close(p[0]);
	}
	if (pid < 0 || waitpid(pid, &st, 0) < 0)
		return -ECHILD;
	return WIFEXITED(st) && !WEXITSTATUS(st) ? 0 : -EIO;
}

static void pause_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}

static int link_is_up(const char *ns)
{
	const char *const cmd[] = {"ip", "-n", ns, "-o", "link", "show", NETNS_IF, NULL};
	char out[1024];

	return run(cmd, out, sizeof(out), 1) == 0 && strstr(out, "state UP");
}

int netns_set_link(const struct netns_link *l, int up)
{
	for (int s = 0; s < 2; s++) {
		const char *const cmd[] = {"ip", "-n", s ? l->b : l->a, "link", "set", NETNS_IF,
					   up ? "up" : "down", NULL};

		if (run(cmd, NULL, 0, 0) < 0)
			return -EIO;
	}
	/* Carrier negotiation and duplicate address detection take a moment:
	 * the first connection must not race them. */
	for (int i = 0; up && i < 100; i++) {
		if (link_is_up(l->a) && link_is_up(l->b))
			return 0;
		pause_ms(50);
	}
	return up ? -ETIMEDOUT : 0;
}

int netns_up(struct netns_link *l, const char *prefix, char *why, size_t len)
{
	const char *add_a[] = {"ip", "netns", "add", l->a, NULL};
	char net_a[40], net_b[40], err[256] = "";
	int n = (int)(getpid() % 254) + 1, r;

	memset(l, 0, sizeof(*l));
	if (snprintf(l->a, sizeof(l->a), "%s-a", prefix) >= (int)sizeof(l->a) ||
	    snprintf(l->b, sizeof(l->b), "%s-b", prefix) >= (int)sizeof(l->b))
		return -ENAMETOOLONG;
	/* The addresses exist only inside this pair: another pair may use
	 * the same ones. */
	snprintf(l->addr_a, sizeof(l->addr_a), "10.250.%d.1", n);
	snprintf(l->addr_b, sizeof(l->addr_b), "10.250.%d.2", n);
	snprintf(net_a, sizeof(net_a), "%s/24", l->addr_a);
	snprintf(net_b, sizeof(net_b), "%s/24", l->addr_b);
	{
		char path[128];

		snprintf(path, sizeof(path), "/run/netns/%s", l->a);
		if (access(path, F_OK) == 0)
			return -EEXIST;
	}
	if (run(add_a, NULL, 0, 1) < 0) {
		snprintf(why, len, "cannot create network namespaces (ip netns add %s failed; "
			 "root and iproute2 are needed)", l->a);
		return -ENOTSUP;
	}
	l->up = 1;
	{
		const char *const cmds[][16] = {
			{"ip", "netns", "add", l->b, NULL},
			/* Made directly inside the namespaces: nothing appears in ours. */
			{"ip", "link", "add", NETNS_IF, "netns", l->a, "type", "veth", "peer", "name",
			 NETNS_IF, "netns", l->b, NULL},
			{"ip", "-n", l->a, "addr", "add", net_a, "dev", NETNS_IF, NULL},
			{"ip", "-n", l->b, "addr", "add", net_b, "dev", NETNS_IF, NULL},
			{"ip", "-n", l->a, "link", "set", "lo", "up", NULL},
			{"ip", "-n", l->b, "link", "set", "lo", "up", NULL},
		};

		for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
			if (run(cmds[i], NULL, 0, 0) < 0) {
				snprintf(err, sizeof(err), "step %zu (%s %s %s) failed", i + 1,
					 cmds[i][0], cmds[i][1], cmds[i][2]);
				goto fail;
			}
	}
	r = netns_set_link(l, 1);
	if (r == 0)
		return 0;
	snprintf(err, sizeof(err), "the veth did not come up");
fail:
	snprintf(why, len, "veth setup: %s", err);
	netns_down(l);
	return -EIO;
}

/* The pids `ip netns pids` lists: only processes inside the namespace. */
static size_t ns_pids(const char *ns, pid_t *pids, size_t max)
{
	const char *const cmd[] = {"ip", "netns", "pids", ns, NULL};
	char out[4096], *p, *end;
	size_t n = 0;

	if (run(cmd, out, sizeof(out), 1) < 0)
		return 0;
	for (p = out; n < max; p = end) {
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		if (v > 1)
			pids[n++] = (pid_t)v;
	}
	return n;
}

void netns_down(struct netns_link *l)
{
	const char *names[2] = {l->a, l->b};

	if (!l->up)
		return;
	for (int s = 0; s < 2; s++) {
		const char *const del[] = {"ip", "netns", "delete", names[s], NULL};
		pid_t pids[256];
		size_t n = ns_pids(names[s], pids, 256);
		char path[128];

		snprintf(path, sizeof(path), "/run/netns/%s", names[s]);
		if (access(path, F_OK) < 0)
			continue;
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGTERM);
		/* At most 2 s for them to go, then SIGKILL what is left. */
		for (time_t end = time(NULL) + 2; n && (n = ns_pids(names[s], pids, 256)) &&
						   time(NULL) < end;)
			pause_ms(50);
		for (size_t i = 0; i < n; i++)
			kill(pids[i], SIGKILL);
		/* Deleting one end of the veth removes its peer too. */
		run(del, NULL, 0, 1);
	}
	l->up = 0;
}

int netns_shape(const struct netns_link *l, const char *rate, const char *burst)
{
	for (int s = 0; s < 2; s++) {
		const char *const cmd[] = {"tc", "-n", s ? l->b : l->a, "qdisc", "replace", "dev",
					   NETNS_IF, "root", "tbf", "rate", rate, "burst",
					   burst ? burst : "256kb", "latency", "50ms", NULL};

		if (run(cmd, NULL, 0, 0) < 0)
			return -EIO;
	}
	return 0;
}

int netns_unshape(const struct netns_link *l)
{
	for (int s = 0; s < 2; s++) {
		const char *const cmd[] = {"tc", "-n", s ? l->b : l->a, "qdisc", "del", "dev",
					   NETNS_IF, "root", NULL};

		run(cmd, NULL, 0, 1);
	}
	return 0;
}

/* ---- qmigrate netns ------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f, "usage: qmigrate netns up PREFIX\n"
		   "       qmigrate netns down PREFIX\n"
		   "       qmigrate netns shape PREFIX RATE [BURST]\n"
		   "       qmigrate netns unshape PREFIX\n"
		   "       qmigrate netns link-up PREFIX | link-down PREFIX\n"
		   "Two hosts on one machine, for tests and benchmarks: namespaces PREFIX-a and\n"
		   "PREFIX-b joined by a veth pair (" NETNS_IF " in both; tc tbf with shape).\n"
		   "up prints shell assignments: NETNS_A, NETNS_B, NETNS_ADDR_A, NETNS_ADDR_B,\n"
		   "NETNS_IF; it exits 77 where namespaces cannot be made. down kills what\n"
		   "still runs inside the two namespaces (and nothing else) and deletes them.\n"
		   "Needs root, ip and tc (iproute2).\n");
}

static void link_of(struct netns_link *l, const char *prefix)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->a, sizeof(l->a), "%s-a", prefix);
	snprintf(l->b, sizeof(l->b), "%s-b", prefix);
	l->up = 1;
}

int cmd_netns(int argc, char **argv)
{
	struct netns_link l;
	char why[256] = "";
	int r;

	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc < 3 || !*argv[2]) {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "up") && argc == 3) {
		r = netns_up(&l, argv[2], why, sizeof(why));
		if (r == -ENOTSUP) {
			printf("skipped: %s\n", why);
			return 77;
		}
		if (r == -EEXIST)
			die(EXIT_SETUP, "netns: namespace %s already exists", l.a);
		if (r < 0)
			die(EXIT_SETUP, "netns: %s", *why ? why : strerror(-r));
		printf("NETNS_A=%s NETNS_B=%s NETNS_ADDR_A=%s NETNS_ADDR_B=%s NETNS_IF=%s\n", l.a,
		       l.b, l.addr_a, l.addr_b, NETNS_IF);
		return EXIT_OK;
	}
	link_of(&l, argv[2]);
	if (!strcmp(argv[1], "down") && argc == 3) {
		netns_down(&l);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "shape") && (argc == 4 || argc == 5))
		return netns_shape(&l, argv[3], argc == 5 ? argv[4] : NULL) < 0 ? EXIT_FAIL
										 : EXIT_OK;
	if (!strcmp(argv[1], "unshape") && argc == 3)
		return netns_unshape(&l) < 0 ? EXIT_FAIL : EXIT_OK;
	if ((!strcmp(argv[1], "link-up") || !strcmp(argv[1], "link-down")) && argc == 3) {
		r = netns_set_link(&l, !strcmp(argv[1], "link-up"));
		if (r < 0)
			warnx("netns: %s: %s", argv[1], r == -ETIMEDOUT ? "the veth did not come up"
								 : "ip failed");
		return r < 0 ? EXIT_FAIL : EXIT_OK;
	}
	usage(stderr);
	return EXIT_USAGE;
}
