/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Choosing the accelerator at run time. "auto" means KVM only when
 * /dev/kvm is usable and the tiny guest really runs under it: it must boot
 * and send a few heartbeats within SMOKE_MS. On the machines we test on
 * /dev/kvm is a nested, paravirtual KVM that boots the tiny guest but
 * barely runs Linux, so "auto" chooses TCG for the Linux guest and for
 * caller-defined guests (QMIG_GUEST_NONE) without a smoke test: ask for
 * "kvm" explicitly where it works. Nothing is cached between launches;
 * QMIGRATE_ACCEL=tcg|kvm in the environment answers "auto" without a test
 * (for test suites that launch many guests).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "launch.h"

#define SMOKE_MS 2000
#define SMOKE_BEATS 3

static int count_beats(const char *log, int *ready)
{
	char *s = qm_launch_read_tail(log, 1 << 16), *p;
	int n = 0;

	*ready = 0;
	if (!s)
		return 0;
	*ready = strstr(s, "READY tiny") != NULL;
	for (p = s; (p = strstr(p, "HB seq=")); p++)
		n++;
	free(s);
	return n;
}

/* 1: the tiny guest booted and beat under KVM; 0: it did not (why says). */
static int kvm_smoke(const struct qmig_vm_spec *spec, const char *dir, char *why, size_t why_len)
{
	struct qmig_vm_spec tiny = QMIG_VM_SPEC_INIT;
	struct qmig_guest_boot boot;
	char log[4096], out[4096], serial[4200], msg[256] = "";
	struct qm_argv a = {0};
	struct qm_spawn s = {0};
	int64_t end;
	pid_t pid;
	int pidfd, r, ready = 0, beats = 0, st;

	tiny.guest = QMIG_GUEST_TINY;
	tiny.wss_bytes = 1 << 20;
	tiny.dirty_rate = 1 << 20;
	if (qm_guest_boot(&tiny, &boot, msg, sizeof(msg)) < 0) {
		snprintf(why, why_len, "no tiny guest to test KVM with");
		return 0;
	}
	msg[0] = 0;
	snprintf(log, sizeof(log), "%s/kvm-smoke.log", dir);
	snprintf(out, sizeof(out), "%s/kvm-smoke.stderr", dir);
	snprintf(serial, sizeof(serial), "file:%s", log);
	qm_argv_add(&a, spec->qemu_binary ? spec->qemu_binary : "qemu-system-x86_64");
	qm_argv_add(&a, "-display");
	qm_argv_add(&a, "none");
	qm_argv_add(&a, "-nodefaults");
	qm_argv_add(&a, "-no-user-config");
	if (!spec->no_sandbox) {
		qm_argv_add(&a, "-sandbox");
		qm_argv_add(&a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,"
				"resourcecontrol=deny");
	}
	qm_argv_add(&a, "-accel");
	qm_argv_add(&a, "kvm");
	qm_argv_add(&a, "-m");
	qm_argv_add(&a, "32M");
	qm_argv_add(&a, "-serial");
	qm_argv_add(&a, serial);
	qm_argv_add(&a, "-kernel");
	qm_argv_add(&a, boot.kernel);
	qm_argv_add(&a, "-append");
	qm_argv_add(&a, boot.append);
	if (a.oom) {
		qm_argv_free(&a);
		snprintf(why, why_len, "out of memory");
		return 0;
	}
	s.argv = (const char *const *)a.v;
	s.change_id = spec->change_id;
	s.uid = spec->uid;
	s.gid = spec->gid;
	s.out_path = out;
	r = qm_spawn(&s, &pid, &pidfd, msg, sizeof(msg));
	qm_argv_free(&a);
	if (r < 0) {
		snprintf(why, why_len, "KVM smoke test did not start: %s", msg);
		unlink(out);
		return 0;
	}
	end = qm_launch_mono_ns() + (int64_t)SMOKE_MS * 1000000;
	while (qm_launch_mono_ns() < end) {
		if (qm_wait_exit(pid, pidfd, 20, &st))
			break;
		beats = count_beats(log, &ready);
		if (ready && beats >= SMOKE_BEATS)
			break;
	}
	qm_terminate(pid, pidfd, 0, &st);
	if (pidfd >= 0)
		close(pidfd);
	if (!(ready && beats >= SMOKE_BEATS)) {
		char *err = qm_launch_read_tail(out, 200);

		snprintf(why, why_len,
			 "KVM smoke test failed: the tiny guest %s in %d ms%s%s",
			 ready ? "booted but did not keep time" : "did not boot", SMOKE_MS,
			 err && *err ? ": " : "", err ? err : "");
		free(err);
	}
	unlink(log);
	unlink(out);
	return ready && beats >= SMOKE_BEATS;
}

int qm_choose_accel(const struct qmig_vm_spec *spec, const char *dir, char *accel, size_t len,
		    char *why, size_t why_len)
{
	const char *want = spec->accel;
	char def[64];

	*why = 0;
	/* The process's default (qmig_launch_defaults_set: the CLI's
	 * QMIGRATE_ACCEL) settles "auto" for a whole test run or shell. */
	qm_default_accel(def, sizeof(def));
	if ((!want || !*want || !strcmp(want, "auto")) && *def)
		want = def;
	if (want && *want && strcmp(want, "auto")) {
		if (strncmp(want, "tcg", 3) && strncmp(want, "kvm", 3)) {
			snprintf(why, why_len, "unknown accelerator '%s' (auto, tcg or kvm)", want);
			return -EINVAL;
		}
		snprintf(accel, len, "%s", want);
		return 0;
	}
	snprintf(accel, len, "tcg");
	if (spec->guest != QMIG_GUEST_TINY) {
		snprintf(why, why_len, "accelerator: TCG (auto: KVM is only tried with the tiny "
				       "guest)");
		return 0;
	}
	if (access("/dev/kvm", R_OK | W_OK) < 0) {
		snprintf(why, why_len, "accelerator: TCG (no usable /dev/kvm: %s)",
			 strerror(errno));
		return 0;
	}
	if (kvm_smoke(spec, dir, why, why_len)) {
		snprintf(accel, len, "kvm");
		snprintf(why, why_len, "accelerator: KVM (the tiny guest passed the smoke test)");
		return 0;
	}
	{
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "accelerator: TCG (%s)", why);
		snprintf(why, why_len, "%s", tmp);
	}
	return 0;
}
