/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — the source side of a migration to another host, through
 * the destination host's agent (`qmigrate agent`, docs/PROTOCOL.md).
 *
 *   struct qmig_agent_opts ao = QMIG_AGENT_OPTS_INIT;
 *   ao.url = "qmigrate+tls://host2"; ao.tls_dir = "/etc/qmigrate/tls";
 *   ao.profile = "tiny"; ao.src_qmp = "/run/vm1/qmp.sock";
 *   qmig_agent_session_new(&s, &ao, msg, sizeof(msg));  (hello + prepare)
 *   qmig_agent_session_apply(s, &migrate_opts);          (dst QMP, address, port)
 *   ... drive the migration, and the session too: poll both fds, call
 *       qmig_agent_session_process() when its fd is readable ...
 *   qmig_agent_session_end(s, &result, &reply, msg, sizeof(msg)); (finish+confirm or abort)
 *   qmig_agent_session_free(s);
 *
 * The agent launches the destination QEMU from one of its host profiles
 * (never from a command line sent over the network) and relays that
 * QEMU's QMP socket through a second authenticated connection; the session
 * offers it here as a local unix socket, so the migration engine drives
 * the remote destination exactly as a local one.
 *
 * session_new() and session_end() exchange a few messages with the agent;
 * they wait (bounded by timeout_ms each) and, called on a fiber, suspend
 * instead. process() never waits.
 */
#ifndef QMIG_AGENT_H
#define QMIG_AGENT_H

#include <stddef.h>

#include "qmig_qmp.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The protocol version this library speaks (docs/PROTOCOL.md). */
#define QMIG_AGENT_PROTOCOL 1
/* The agent's control port when the URL names none. */
#define QMIG_AGENT_PORT_DEFAULT 49100

#define QMIG_AGENT_OPTS_VERSION 3

/* Opens one connection to an agent's stdio (e.g. runs `ssh HOST qmigrate
 * agent --stdio`): 0 with the fds to read from and write to (they may be
 * the same; the session closes them), or a negative errno. Called once per
 * connection the session needs (the control connection, the tunnel). */
struct qmig_agent_connect_cb {
	int (*fn)(int *rfd, int *wfd, void *user_data);
	void *user_data;
	void (*free)(void *user_data);
};

struct qmig_agent_queued_cb {
	void (*fn)(long position, void *user_data);
	void *user_data;
	void (*free)(void *user_data);
};

struct qmig_agent_opts {
	unsigned int version;
	/* qmigrate+tls://HOST[:PORT] (mutual TLS), or ssh://[USER@]HOST[:PORT]
	 * with connect below (HOST is also where the stream goes). */
	const char *url;
	struct qmig_agent_connect_cb connect;
	/* ca-cert.pem, client-cert.pem, client-key.pem (qmigrate tls init). */
	const char *tls_dir;
	/* The agent's host profile, and the values the request fills in
	 * ("key=value", NULL-terminated; the profile says which are allowed). */
	const char *profile;
	const char *const *set;
	/* The source QEMU, to describe the VM (RAM size) in the request;
	 * NULL: only what set says. */
	const char *src_qmp;
	const char *job_id;          /* NULL: one is made up */
	int timeout_ms;              /* per exchange; 0: 30 s */
	/* How long to wait for a place when the agent queues the request
	 * (its inbound limit is reached); 0: 10 minutes. */
	int queue_timeout_ms;
	struct qmig_log_cb log;
	/* Version 2 adds the fields from here on; a version-1 caller gets
	 * their defaults. */
	/* The migration stream goes over TLS (qmigrate migrate --tls DIR):
	 * this host's certificate directory for it and the name the
	 * destination's certificate must carry (NULL: the URL's host). The
	 * destination's certificates are on the agent's host, where this
	 * process cannot read them: the agent checks them at prepare (its
	 * server certificate names the host and chains to this directory's
	 * CA, this directory's client certificate chains to its CA) and
	 * refuses with "tls-invalid" or "tls-unavailable". NULL: a plain
	 * stream. */
	const char *stream_tls_dir;
	const char *stream_tls_hostname;
	/* Version 3 adds the fields from here on. */
	/* Called when the agent queues the request (its inbound limit is
	 * reached), with the place in its queue; the session goes on
	 * waiting. NULL fn: only logged. free runs once, when the session
	 * is freed (or session_new fails). */
	struct qmig_agent_queued_cb queued;
	/* Local disks to copy (QMIG_COPY_STORAGE_ALL or _INC, as in
	 * qmig_migrate_opts; 0: none): the prepare lists the source's
	 * writable disks (device, virtual size, format; only those in
	 * migrate_disks, "a,b", when set), the agent creates an image of
	 * the same size for each in its profile's disk directory, gives
	 * its QEMU the same devices and reserves a second port for the
	 * NBD server the migration starts there. A profile without a
	 * "disks" rule refuses ("not-allowed"). */
	int copy_storage;
	const char *migrate_disks;
};

#define QMIG_AGENT_OPTS_INIT {.version = QMIG_AGENT_OPTS_VERSION}

struct qmig_agent_session;
struct qmig_migrate_opts;
struct qmig_result;
struct json_object;

/* Connect, authenticate, hello, prepare (the agent launches the
 * destination), open the QMP tunnel. On failure nothing is left on either
 * host, *out is untouched and msg says what the agent (or the connection)
 * refused. Errors: -ECONNREFUSED, -ETIMEDOUT, -EPROTO (TLS), -EACCES
 * (refused by the agent), -EINVAL (bad options). */
int qmig_agent_session_new(struct qmig_agent_session **out, const struct qmig_agent_opts *o,
			   char *msg, size_t msg_len);
/* Point migrate options at the destination: dst_qmp (the local end of the
 * tunnel), dst_addr, listen_addr, the port the agent reserved, a private
 * port lock directory, tls_dst_dir when tls_dir is set, and max_bandwidth
 * lowered to the agent's per-migration limit. The strings belong to the
 * session. */
int qmig_agent_session_apply(struct qmig_agent_session *s, struct qmig_migrate_opts *mo);
/* Relay the tunnel: poll get_fd() for POLLIN, then process(). Never waits.
 * 0, or a negative errno when the connection to the agent was lost (the
 * migration then loses its destination and handles that). */
int qmig_agent_session_get_fd(const struct qmig_agent_session *s);
int qmig_agent_session_process(struct qmig_agent_session *s);
/* After the migration: a completed one is finished (the agent checks its
 * guest runs, and verifies a test guest's memory stamps) and confirmed;
 * any other result aborts (the agent removes a destination that never
 * ran). *reply (may be NULL) gets the agent's finish or abort reply. */
int qmig_agent_session_end(struct qmig_agent_session *s, const struct qmig_result *r,
			   struct json_object **reply, char *msg, size_t msg_len);
const char *qmig_agent_session_job(const struct qmig_agent_session *s);

/* One request on a connection of its own (hello first): "status",
 * "profiles" or "ping" (docs/PROTOCOL.md). o needs url and tls_dir (or
 * connect); profile is not used. *reply: the agent's reply (new
 * reference), also when it refused (ok false). Waits like session_new. */
int qmig_agent_request(const struct qmig_agent_opts *o, const char *op,
		       struct json_object **reply, char *msg, size_t msg_len);
/* Frees at once; a session not ended is simply dropped, and the agent
 * applies the ownership rule on its own. NULL is fine. */
void qmig_agent_session_free(struct qmig_agent_session *s);

#ifdef __cplusplus
}
#endif
#endif
