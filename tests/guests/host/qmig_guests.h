/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate-guests: the host's side of qmigrate's own test guests (the
 * tiny multiboot guest and the small Linux guest, tests/guests/). Not part
 * of libqmigrate: a static test-support library linked by the qmigrate CLI
 * and the tests, which register it with the engine as a guest plug-in:
 *
 *	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;
 *	d.guest_ops = &qmig_test_guest_ops;
 *	qmig_launch_defaults_set(&d);
 *
 * Build: link build/libqmigrate-guests.a before libqmigrate.
 */
#ifndef QMIG_GUESTS_H
#define QMIG_GUESTS_H

#include <stdint.h>

#include "qmig_guest.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The plug-in (struct qmig_guest_ops, qmig_guest.h): heartbeats (both test
 * guests), the tiny guest's own check on request (an NMI; it answers
 * "VERIFY ..." on its serial line), and the host's stamp check. */
extern const struct qmig_guest_ops qmig_test_guest_ops;

/* The plug-in's boot callback: the tiny guest's tiny/tiny.elf (or tiny.elf)
 * under guest_dir, the Linux guest's vmlinux and initramfs.cpio.gz in
 * linux_dir, and their command lines from the spec (boot.c). */
int qmig_test_guest_boot(const struct qmig_vm_spec *spec, const char *guest_dir,
			 const char *linux_dir, struct qmig_guest_boot *b, char *msg,
			 size_t msg_len, void *user_data);

/* ---- heartbeats ---------------------------------------------------------- */

/* A live reader of a test guest's serial socket, timing each line on the
 * host's CLOCK_MONOTONIC. Lines:
 *   READY tiny wss=... rate=... mem=...
 *   HB seq=<n> gen=<g> pages=<p> rate=<bytes/s>[ tiny]
 *   CORRUPT page=<i> gpa=0x<hex> expected_gen=<g> found_gen=<g'>
 *   VERIFY pages=<n> bad=<k> gen=<g> seq=<s> us=<t>[ first=<i> expected=<g> found=<g'>] */
struct qmig_hb;

int qmig_hb_open(struct qmig_hb **out, const char *serial_socket);
void qmig_hb_free(struct qmig_hb *hb);
int qmig_hb_fd(const struct qmig_hb *hb);
/* Read what is there without blocking; 0, or -ECONNRESET when QEMU went away. */
int qmig_hb_process(struct qmig_hb *hb);
/* Wait (poll: blocks) up to timeout_ms for at least n new beats. */
int qmig_hb_wait(struct qmig_hb *hb, unsigned n, int timeout_ms);
/* out->size as in qmig_guest.h (0: the whole struct). */
void qmig_hb_get(const struct qmig_hb *hb, struct qmig_guest_stats *out);
/* Start measuring gaps afresh (e.g. after boot). */
void qmig_hb_reset_gap(struct qmig_hb *hb);
/* The tiny guest's answers to check requests: how many so far, and the
 * last one (line may be NULL). */
unsigned qmig_hb_verify_line(const struct qmig_hb *hb, char *line, size_t len);

/* ---- the tiny guest's memory, checked from the host ----------------------- */

/* The guest must be stopped. Dumps its memory (pmemsave into dir, or the
 * system temp dir) and checks every stamp. Returns 0 verified, 1 bad pages
 * (report says which), negative errno when it could not check: -EBUSY
 * running, -EINPROGRESS an incoming migration not finished, -ENOMSG no
 * tiny guest there (or not booted yet). */
int qmig_tiny_verify(struct qmig_qmp_conn *conn, const char *dir,
		     struct qmig_verify_report *report);
/* The same on a dump already in memory (for tests). */
int qmig_tiny_verify_buf(const void *ram, uint64_t len, struct qmig_verify_report *report);

#ifdef __cplusplus
}
#endif
#endif
