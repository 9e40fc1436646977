/* Launch failures give QEMU's own message and leave nothing behind: no
 * child process (not even a zombie) and no runtime directory. Cases: a
 * missing binary, an option QEMU does not know, QEMU exiting at once
 * (bad machine, kernel it cannot load), the Linux guest not built. */
#include <dirent.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "guest_util.h"

static char rundir[] = "/tmp/qmig-launch-fail-XXXXXX";

static int dir_empty(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n == 0;
}

static int no_children(void)
{
	return waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD;
}

/* Launch, expect failure r_want (0: any) with needle in the message. */
static int expect_fail(const char *what, struct qmig_vm_spec *spec, int r_want,
		       const char *needle)
{
	struct qmig_vm *vm = NULL;
	char msg[2048] = "";
	int r = qmig_vm_launch(&vm, spec, msg, sizeof(msg));

	printf("%s: %d (%s): %s\n", what, r, r < 0 ? strerror(-r) : "-", msg);
	if (r >= 0) {
		qmig_vm_free(vm);
		fprintf(stderr, "FAIL %s: launch succeeded\n", what);
		return 0;
	}
	if (vm) {
		fprintf(stderr, "FAIL %s: output set on failure\n", what);
		return 0;
	}
	if ((r_want && r != r_want) || !strstr(msg, needle)) {
		fprintf(stderr, "FAIL %s: want %d with '%s'\n", what, r_want, needle);
		return 0;
	}
	if (!no_children()) {
		fprintf(stderr, "FAIL %s: a child process is left\n", what);
		return 0;
	}
	if (!dir_empty(rundir)) {
		fprintf(stderr, "FAIL %s: files left in %s\n", what, rundir);
		return 0;
	}
	return 1;
}

int main(void)
{
	struct qmig_vm_spec spec = QMIG_VM_SPEC_INIT;
	const char *bad_opt[] = {"-no-such-option", NULL};
	const char *bad_machine[] = {"-machine", "no-such-machine", NULL};
	const char *bad_kernel[] = {"-kernel", "/nonexistent/bzImage", NULL};
	int64_t t0;
	int r;

	skip_without_qemu();
	CHECK(mkdtemp(rundir), "mkdtemp");
	/* QEMU runs as another user (runas): it must reach its directory. */
	CHECK(chmod(rundir, 0711) == 0, "chmod");
	setenv("XDG_RUNTIME_DIR", rundir, 1);
	spec.accel = "tcg";
	spec.guest = QMIG_GUEST_NONE;

	spec.qemu_binary = "/nonexistent/qemu-system-x86_64";
	CHECK(expect_fail("missing binary", &spec, -ENOENT, "No such file or directory"), "-");
	spec.qemu_binary = NULL;

	spec.extra_args = bad_opt;
	CHECK(expect_fail("unknown option", &spec, -EIO, "-no-such-option: invalid option"), "-");

	spec.extra_args = bad_machine;
	CHECK(expect_fail("bad machine", &spec, -EIO, "unsupported machine type"), "-");

	/* fails after QEMU opened its QMP socket: must not count as started */
	spec.extra_args = bad_kernel;
	t0 = now_ns();
	CHECK(expect_fail("kernel QEMU cannot load", &spec, -EIO, "could not open kernel file"),
	      "-");
	printf("  (reported in %.0f ms)\n", (now_ns() - t0) / 1e6);
	spec.extra_args = NULL;

	spec.accel = "hvf";
	CHECK(expect_fail("unknown accelerator", &spec, -EINVAL, "unknown accelerator"), "-");
	spec.accel = "tcg";

	/* Least privilege: an unknown --runas user; a runtime directory QEMU's
	 * user could not reach (its parent is root's, 0700). */
	if (geteuid() == 0) {
		char closed[] = "/tmp/qmig-launch-closed-XXXXXX", sub[64];

		spec.runas = "qmig-no-such-user";
		CHECK(expect_fail("unknown runas user", &spec, -ENOENT,
				  "cannot run QEMU as 'qmig-no-such-user': no such user"), "-");
		spec.runas = "65534";
		CHECK(mkdtemp(closed), "mkdtemp");
		snprintf(sub, sizeof(sub), "%s/vm", closed);
		spec.runtime_dir = sub;
		r = expect_fail("runtime dir out of reach", &spec, -EACCES,
				"QEMU's user (uid 65534) cannot reach");
		CHECK(access(sub, F_OK) < 0, "%s left behind", sub);
		rmdir(closed);
		CHECK(r, "-");
		spec.runtime_dir = NULL;
		spec.runas = NULL;
	}

	spec.version = 99;
	CHECK(expect_fail("bad spec version", &spec, -EINVAL, "bad launch spec"), "-");
	spec.version = QMIG_VM_SPEC_VERSION;

	use_tree_guests("/nonexistent/linux-guest", getenv("QMIGRATE_ACCEL"));
	spec.guest = QMIG_GUEST_LINUX;
	CHECK(expect_fail("linux guest not built", &spec, -ENOENT, "make linux-guest"), "-");
	use_tree_guests(NULL, getenv("QMIGRATE_ACCEL"));
out:
	rmdir(rundir);
	return failed;
}
