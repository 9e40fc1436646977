/* The face of engine/link/: how the migration stream travels between the
 * two QEMUs: TLS credentials and objects (tls.c), the relay transport
 * (relay_link.c). Internal to engine/. */
#ifndef QMIG_LINK_INT_H
#define QMIG_LINK_INT_H

#include "core/core.h"

/* relay_link.c */
/* Plan time: the private directory and the QEMU-side URIs. */
int qm_relay_plan(struct qmig_migration *m);
/* The "uri" the destination QEMU listens on / the source migrates to. */
const char *qm_relay_in_uri(struct qmig_migration *m, char *buf, size_t len);
const char *qm_relay_out_uri(struct qmig_migration *m, char *buf, size_t len);
/* Certificates for the relay's own TLS (tls_dir / tls_dst_dir). */
int qm_relay_tls_check(struct qmig_migration *m);
/* Both halves listening (before migrate-incoming); next_gen: a fresh pair
 * for a postcopy recovery (new source socket; the destination half
 * connects to relay_in, which the caller may have renewed). */
int qm_relay_start(struct qmig_migration *m, int next_gen);
/* A new relay_in for migrate-recover. */
void qm_relay_renew_in(struct qmig_migration *m);
/* Postcopy recovery: 1 when a fresh pair of halves has its channel to the
 * far half open (the source may resume), 0 not yet (made or still
 * connecting; call again), negative errno on failure. */
int qm_relay_recover_ready(struct qmig_migration *m);
/* Move bytes, handle channel events (a broken channel fails the
 * migration unless postcopy recovers it). Called from every process(). */
void qm_relay_pump(struct qmig_migration *m);
/* When a relay half must run even without input (0: no need). */
int64_t qm_relay_due_ns(const struct qmig_migration *m);
/* Fill the relay fields of a sample. */
void qm_relay_sample(struct qmig_migration *m, struct qmig_sample *s);
/* The relay's record (per-channel bytes and times) for the trace. */
void qm_relay_emit(struct qmig_migration *m);
/* Close everything, remove the directory. Safe to call twice. */
void qm_relay_stop(struct qmig_migration *m);
/* And the thread's mutex and eventfds, with the handle. */
void qm_relay_release(struct qmig_migration *m);

/* tls.c */
int qm_tls_check(struct qmig_migration *m);
int qm_tls_plan(struct qmig_migration *m, struct side *s, struct json_object *params);
void qm_tls_cleanup(struct qmig_migration *m, struct side *s);
void qm_tls_remove_copies(struct qmig_migration *m);

#endif
