/* A launched QEMU's life: capabilities dropped (the effective set shown),
 * no new privileges, a session of its own, a 0700 runtime directory, the
 * serial log written with no reader connected, -S / -incoming honoured,
 * killed and reaped by free (nothing left), killed when its owner dies,
 * alive after its owner exits when detached, and optionally run as
 * another user. */
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "guest_util.h"

/* The value of a "Key:\tvalue" line of /proc/PID/status. */
static int proc_status(int pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;
	int found = 0;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			snprintf(out, len, "%s", line + kl + 1 + strspn(line + kl + 1, " \t"));
			out[strcspn(out, "\n")] = 0;
			found = 1;
			break;
		}
	fclose(f);
	return found;
}

static int gone(int pid)
{
	return kill(pid, 0) < 0 && errno == ESRCH;
}

static int status_is(struct qmig_vm *vm, const char *want)
{
	struct qmig_qmp_conn *c = NULL;
	struct qmig_vm_status st = {0};
	int ok;

	ok = qmig_qmp_conn_open(&c, qmig_vm_qmp_path(vm), NULL) == 0 &&
	     qmig_cmd_query_status(c, &st) == 0 && !strcmp(st.status, want);
	printf("  status %s (want %s)\n", st.status, want);
	qmig_qmp_conn_close(c);
	return ok;
}

static int check_caps(int pid)
{
	static const char *keys[] = {"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"};
	char v[64], self[64];
	int ok = 1;

	proc_status(getpid(), "CapEff", self, sizeof(self));
	printf("caps: this test runs with CapEff %s; QEMU %d has:\n", self, pid);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		if (!proc_status(pid, keys[i], v, sizeof(v)))
			return 0;
		printf("  %s %s\n", keys[i], v);
		ok &= strspn(v, "0") == strlen(v);
	}
	if (!proc_status(pid, "NoNewPrivs", v, sizeof(v)) || strcmp(v, "1"))
		return 0;
	printf("  NoNewPrivs %s\n", v);
	return ok;
}

/* In a child process (the "engine"): launch, report QEMU's pid and its
 * runtime directory, die. */
static char owner_dir[256];

static int owner_dies(int detach)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	struct {
		int pid;
		char dir[256];
	} rep = {-1, ""};
	char cmd[300];
	int p[2];
	pid_t child;

	if (pipe(p) < 0)
		return -1;
	child = fork();
	if (child == 0) {
		struct qmig_vm *vm = NULL;
		char msg[512];

		spec.guest = QMIG_GUEST_NONE;
		spec.accel = "tcg";
		spec.detach = detach;
		if (qmig_vm_launch(&vm, &spec, msg, sizeof(msg)) == 0) {
			rep.pid = qmig_vm_pid(vm);
			snprintf(rep.dir, sizeof(rep.dir), "%s", qmig_vm_runtime_dir(vm));
		}
		if (write(p[1], &rep, sizeof(rep)) < 0)
			_exit(2);
		_exit(0); /* no qmig_vm_free: the owner just dies */
	}
	close(p[1]);
	if (read(p[0], &rep, sizeof(rep)) != (ssize_t)sizeof(rep))
		rep.pid = -1;
	close(p[0]);
	waitpid(child, NULL, 0);
	snprintf(owner_dir, sizeof(owner_dir), "%s", rep.dir);
	/* A detached guest's directory is its user's to remove: ours here. */
	if (detach && !strncmp(rep.dir, "/tmp/qmig-vm-", 13) && !strchr(rep.dir, '\'')) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", rep.dir);
		if (system(cmd) != 0)
			fprintf(stderr, "could not remove %s\n", rep.dir);
	}
	return rep.pid;
}

int main(void)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	struct qmig_vm *vm = NULL;
	char msg[1024], dir[512] = "", v[64];
	struct stat st;
	int r, pid = 0, ws = 0;

	skip_without_qemu();
	/* Orphans of the "owner" children below come to us, so we can reap them. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);

	/* A running tiny guest that nobody reads. */
	spec.guest = QMIG_GUEST_TINY;
	spec.accel = "tcg";
	spec.mem_bytes = 64ull << 20;
	spec.wss_bytes = 4ull << 20;
	spec.dirty_rate = 4ull << 20;
	r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
	CHECK(r == 0, "launch: %s", msg);
	pid = qmig_vm_pid(vm);
	snprintf(dir, sizeof(dir), "%s", qmig_vm_runtime_dir(vm));
	CHECK(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700, "runtime dir mode %o",
	      st.st_mode & 0777);
	CHECK(check_caps(pid), "QEMU kept capabilities or may gain privileges");
	CHECK(getsid(pid) == pid, "QEMU is not in a session of its own");
	CHECK(qmig_vm_pidfd(vm) >= 0, "no pidfd");
	CHECK(!strcmp(qmig_vm_accel(vm), "tcg"), "accel %s", qmig_vm_accel(vm));
	CHECK(wait_in_file(qmig_vm_serial_log(vm), "HB seq=20 ", 10000),
	      "the serial log gets no heartbeats without a reader");
	CHECK(qmig_vm_exited(vm, &ws) == 0, "QEMU exited");
	CHECK(status_is(vm, "running"), "not running");
	CHECK(strstr(qmig_vm_stderr(vm), "") != NULL, "stderr");
	qmig_vm_free(vm);
	vm = NULL;
	CHECK(gone(pid), "QEMU %d still there after free", pid);
	CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a child (zombie?) is left");
	CHECK(access(dir, F_OK) < 0, "runtime dir %s left", dir);
	printf("free: QEMU %d gone, reaped, %s removed\n", pid, dir);

	/* Paused destination: -S and -incoming defer, then kill. */
	spec.guest = QMIG_GUEST_NONE;
	spec.incoming = 1;
	spec.paused = 1;
	r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
	CHECK(r == 0, "launch incoming: %s", msg);
	pid = qmig_vm_pid(vm);
	CHECK(qmig_vm_serial_path(vm) == NULL, "a serial socket for a guest of none");
	CHECK(status_is(vm, "inmigrate"), "not waiting for an incoming migration");
	CHECK(qmig_vm_kill(vm) == 0, "kill");
	CHECK(qmig_vm_exited(vm, &ws) == 1 && WIFSIGNALED(ws) && WTERMSIG(ws) == SIGKILL,
	      "exit status 0x%x after kill", ws);
	qmig_vm_free(vm);
	vm = NULL;
	CHECK(gone(pid), "killed QEMU still there");
	spec.incoming = spec.paused = 0;

	/* The owner dies without cleaning up: its QEMU dies with it. */
	pid = owner_dies(0);
	CHECK(pid > 0, "owner could not launch");
	for (int i = 0; i < 300 && !gone(pid); i++) {
		waitpid(pid, &ws, WNOHANG);
		usleep(10000);
	}
	CHECK(gone(pid), "QEMU %d outlived its owner", pid);
	printf("owner died: QEMU %d was killed (death signal)\n", pid);
	/* Its runtime directory stays until the next launch sweeps it away. */
	snprintf(dir, sizeof(dir), "%s", owner_dir);
	CHECK(access(dir, F_OK) == 0, "no runtime directory %s to sweep", dir);
	r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
	CHECK(r == 0, "launch: %s", msg);
	qmig_vm_free(vm);
	vm = NULL;
	CHECK(access(dir, F_OK) < 0, "the dead owner's %s was not swept", dir);
	printf("owner died: its runtime directory %s was swept by the next launch\n", dir);

	/* Detached: it outlives its owner. */
	pid = owner_dies(1);
	CHECK(pid > 0, "owner could not launch detached");
	usleep(300000);
	CHECK(proc_status(pid, "State", v, sizeof(v)) && v[0] != 'Z',
	      "detached QEMU %d died with its owner", pid);
	printf("detached: QEMU %d outlived its owner (state %s)\n", pid, v);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);

	/* Run as another user: nobody (65534) owns the process and the dir. */
	if (geteuid() == 0) {
		struct qmig_qmp_conn *c = NULL;
		struct qmig_verify_report rep;

		spec.guest = QMIG_GUEST_TINY;
		spec.change_id = 1;
		spec.uid = spec.gid = 65534;
		r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
		CHECK(r == 0, "launch as uid 65534: %s", msg);
		pid = qmig_vm_pid(vm);
		CHECK(proc_status(pid, "Uid", v, sizeof(v)) && !strncmp(v, "65534", 5), "Uid %s",
		      v);
		CHECK(check_caps(pid), "caps as uid 65534");
		CHECK(wait_in_file(qmig_vm_serial_log(vm), "HB seq=5 ", 10000), "no heartbeats");
		CHECK(qmig_qmp_conn_open(&c, qmig_vm_qmp_path(vm), NULL) == 0, "QMP");
		r = qmig_cmd_stop(c);
		if (r == 0)
			r = qmig_tiny_verify(c, qmig_vm_runtime_dir(vm), &rep);
		qmig_qmp_conn_close(c);
		CHECK(r == 0, "verify as uid 65534: %d %s", r, r > 0 ? rep.detail : "");
		printf("uid 65534: runs, beats, verifies\n");
		qmig_vm_free(vm);
		vm = NULL;
	}
	/* The default as root: the dedicated user, QEMU's seccomp sandbox, no
	 * capability; a postcopy destination (userfaultfd) keeps exactly
	 * CAP_SYS_PTRACE, as an ambient capability of that user. */
	if (geteuid() == 0 && getpwnam(QMIG_RUNAS_DEFAULT)) {
		struct passwd *pw = getpwnam(QMIG_RUNAS_DEFAULT);
		unsigned int uid = 0;
		struct stat ds;
		char want[16];

		spec.guest = QMIG_GUEST_TINY;
		spec.change_id = 0;
		spec.runas = NULL;
		for (int uffd = 0; uffd < 2; uffd++) {
			spec.userfaultfd = uffd;
			r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
			CHECK(r == 0, "launch as %s: %s", QMIG_RUNAS_DEFAULT, msg);
			pid = qmig_vm_pid(vm);
			qmig_vm_ids(vm, &uid, NULL);
			snprintf(want, sizeof(want), "%u\t", (unsigned)pw->pw_uid);
			CHECK(uid == pw->pw_uid && proc_status(pid, "Uid", v, sizeof(v)) &&
			      !strncmp(v, want, strlen(want)), "Uid %s, want %u", v,
			      (unsigned)pw->pw_uid);
			CHECK(proc_status(pid, "Seccomp", v, sizeof(v)) && !strcmp(v, "2"),
			      "no seccomp filter (Seccomp %s)", v);
			CHECK(stat(qmig_vm_runtime_dir(vm), &ds) == 0 && ds.st_uid == pw->pw_uid &&
			      (ds.st_mode & 0777) == 0700, "runtime directory owner/mode");
			CHECK(wait_in_file(qmig_vm_serial_log(vm), "HB seq=5 ", 10000),
			      "no heartbeats as %s", QMIG_RUNAS_DEFAULT);
			if (!uffd) {
				CHECK(check_caps(pid), "caps as %s", QMIG_RUNAS_DEFAULT);
			} else {
				const char *keys[] = {"CapPrm", "CapEff", "CapAmb", "CapBnd"};

				for (int k = 0; k < 4; k++)
					CHECK(proc_status(pid, keys[k], v, sizeof(v)) &&
					      !strcmp(v, "0000000000080000"),
					      "userfaultfd: %s %s, want CAP_SYS_PTRACE alone", keys[k], v);
			}
			printf("%s (uid %u)%s: seccomp on, runtime dir its own, %s\n",
			       QMIG_RUNAS_DEFAULT, uid, uffd ? ", userfaultfd" : "",
			       uffd ? "CAP_SYS_PTRACE alone (ambient)" : "no capabilities");
			qmig_vm_free(vm);
			vm = NULL;
		}
		spec.userfaultfd = 0;
	} else {
		printf("default user: not checked (%s)\n",
		       geteuid() ? "not root" : "no user " QMIG_RUNAS_DEFAULT);
	}
	/* "auto": KVM only if the tiny guest passes the smoke test under it.
	 * On our nested test machines it does not, and TCG is chosen. */
	{
		int64_t t0 = now_ns();
		const char *why = NULL;

		use_tree_guests(NULL, NULL);
		spec.guest = QMIG_GUEST_TINY;
		spec.change_id = 0;
		spec.accel = NULL;
		r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
		CHECK(r == 0, "launch with accel auto: %s", msg);
		CHECK(wait_in_file(qmig_vm_serial_log(vm), "HB seq=5 ", 10000),
		      "no heartbeats under %s", qmig_vm_accel(vm));
		why = access("/dev/kvm", R_OK | W_OK) ? "no usable /dev/kvm" : "smoke test decided";
		printf("auto: %s in %.0f ms (%s)\n", qmig_vm_accel(vm), (now_ns() - t0) / 1e6, why);
		qmig_vm_free(vm);
		vm = NULL;
		spec.accel = "tcg";
	}

	/* In a network namespace: QEMU's net namespace is that one. */
	char ns_name[32], cmd[96], ns_path[64];

	snprintf(ns_name, sizeof(ns_name), "qmig-life-%d", (int)getpid());
	snprintf(ns_path, sizeof(ns_path), "/run/netns/%s", ns_name);
	snprintf(cmd, sizeof(cmd), "ip netns add %s 2>/dev/null", ns_name);
	if (geteuid() == 0 && system(cmd) == 0) {
		struct stat ns, qns;
		char path[64];

		spec.guest = QMIG_GUEST_NONE;
		spec.change_id = 0;
		spec.netns = ns_name;
		r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
		pid = r == 0 ? qmig_vm_pid(vm) : 0;
		snprintf(path, sizeof(path), "/proc/%d/ns/net", pid);
		r = r == 0 && stat(ns_path, &ns) == 0 &&
		    stat(path, &qns) == 0 && ns.st_ino == qns.st_ino && check_caps(pid);
		qmig_vm_free(vm);
		vm = NULL;
		snprintf(cmd, sizeof(cmd), "ip netns del %s", ns_name);
		if (system(cmd) != 0)
			fprintf(stderr, "could not delete netns %s\n", ns_name);
		CHECK(r, "QEMU not in netns %s: %s", ns_name, msg);
		printf("netns: QEMU %d ran in %s, without capabilities\n", pid, ns_name);
		spec.netns = "qmig-no-such-netns";
		r = qmig_vm_launch(&vm, &spec, msg, sizeof(msg));
		CHECK(r < 0 && strstr(msg, "network namespace"), "missing netns: %d %s", r, msg);
		printf("netns missing: %s\n", msg);
	}
out:
	qmig_vm_free(vm);
	return failed;
}
