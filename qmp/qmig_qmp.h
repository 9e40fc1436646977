/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — the QMP layer.
 *
 * Three parts, each usable alone:
 *  - the protocol core (struct qmig_qmp): bytes in, messages out; it never
 *    touches a socket, so it can be tested and fuzzed with canned bytes;
 *  - the connection (struct qmig_qmp_conn): the core around a non-blocking
 *    unix or TCP socket, with timeouts and fd passing;
 *  - the schema (struct qmig_schema): what this QEMU has, from query-qmp-schema.
 *
 * Conventions (whole library): 0 or a positive count on success, a negative
 * errno on failure, details in the handle's message string. No threads, no
 * globals, no printing. Destructors accept NULL.
 */
#ifndef QMIG_QMP_H
#define QMIG_QMP_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* json-c's object type; the library passes and returns these. */
struct json_object;

/* ---- logging, shared by every handle of the library ---------------- */

enum qmig_log_level { QMIG_LOG_ERROR, QMIG_LOG_WARN, QMIG_LOG_INFO, QMIG_LOG_DEBUG };

struct qmig_log_cb {
	void (*fn)(enum qmig_log_level level, const char *msg, void *user_data);
	void *user_data;
	void (*free)(void *user_data); /* runs exactly once, may be NULL */
};

/* ---- the protocol core --------------------------------------------- */

#define QMIG_QMP_LIMITS_VERSION 2

/* Defences against a misbehaving peer: what one connection may cost.
 * The bytes of a message are counted before json-c sees them, so a
 * message over a limit is refused before it is built. Exceeding any
 * limit breaks the stream (-EMSGSIZE, -ELOOP) with a message naming it.
 * Defaults (see docs/ARCHITECTURE.md, "Input from peers", for the
 * measurements): the largest real reply, query-qmp-schema, is 236 KB,
 * 1172 elements in its largest array and 63641 nodes on QEMU 10.0. */
struct qmig_qmp_limits {
	unsigned int version;
	size_t max_message;        /* bytes in one JSON message */
	int max_depth;             /* nesting of arrays/objects */
	size_t max_pending_events; /* queued, not yet taken by the caller */
	size_t max_elements;       /* members of one object or elements of one array */
	size_t max_nodes;          /* parse cost of one message: 10 per object (json-c
				    * allocates a hash table for each), 2 per array,
				    * 1 per ',' and ':'; also bounds queued events */
	size_t max_greeting;       /* bytes of the greeting */
};

#define QMIG_QMP_LIMITS_INIT \
	{QMIG_QMP_LIMITS_VERSION, 4u << 20, 64, 4096, 16384, 512u << 10, 16384}

enum qmig_qmp_state {
	QMIG_QMP_WAIT_GREETING, /* nothing received yet */
	QMIG_QMP_NEGOTIATING,   /* qmp_capabilities sent, reply pending */
	QMIG_QMP_READY,         /* commands may be sent */
	QMIG_QMP_BROKEN         /* protocol error: see qmig_qmp_error() */
};

enum qmig_qmp_msg_kind {
	QMIG_QMP_MSG_REPLY, /* {"return": ...} for a command we sent */
	QMIG_QMP_MSG_ERROR, /* {"error": {class, desc}} for a command we sent */
	QMIG_QMP_MSG_EVENT  /* {"event": ..., "data": ..., "timestamp": ...} */
};

/* One message taken from the core. Owned by the caller until
 * qmig_qmp_msg_clear(). */
struct qmig_qmp_msg {
	enum qmig_qmp_msg_kind kind;
	uint64_t id;                 /* REPLY/ERROR: the id we sent */
	const char *event;           /* EVENT: its name */
	int64_t ts_sec, ts_usec;     /* EVENT: QEMU's timestamp */
	struct json_object *data;    /* REPLY: "return"; EVENT: "data" (may be NULL) */
	const char *err_class;       /* ERROR: e.g. "GenericError" */
	const char *err_desc;        /* ERROR: human text, never to be parsed */
	struct json_object *root;    /* the whole message; owns the above */
};

struct qmig_qmp_stats {
	uint64_t messages;          /* parsed */
	uint64_t events;            /* received */
	uint64_t events_dropped;    /* over max_pending_events */
	uint64_t unknown_ids;       /* replies to no command in flight (break the stream) */
	uint64_t bytes_in, bytes_out;
};

struct qmig_qmp;

int qmig_qmp_new(struct qmig_qmp **out, const struct qmig_qmp_limits *limits);
void qmig_qmp_free(struct qmig_qmp *qmp);
void qmig_qmp_set_log(struct qmig_qmp *qmp, const struct qmig_log_cb *log);

/* Feed received bytes. The greeting is consumed internally and answered
 * by queueing qmp_capabilities (with "oob" when the server offers it).
 * Returns 0, or a negative errno once the stream is broken (-EPROTO bad
 * JSON or shape, a reply with both "return" and "error", a reply whose id
 * answers no command in flight; -EMSGSIZE over a size, element or node
 * limit; -ELOOP too deep); after that every call fails the same way. */
int qmig_qmp_feed(struct qmig_qmp *qmp, const void *buf, size_t len);

/* Tell the core the peer closed. Fails with -ECONNRESET if a message was
 * cut in half or commands were still waiting for replies. */
int qmig_qmp_eof(struct qmig_qmp *qmp);

/* Take the next parsed message: 1 and *msg filled, 0 when none. */
int qmig_qmp_next(struct qmig_qmp *qmp, struct qmig_qmp_msg *msg);
void qmig_qmp_msg_clear(struct qmig_qmp_msg *msg);

/* Queue a command (args may be NULL; it is not consumed). Only
 * qmp_capabilities is accepted before the core is READY; others are held
 * and flushed once it is. */
int qmig_qmp_command(struct qmig_qmp *qmp, const char *name, struct json_object *args,
		     int oob, uint64_t *id_out);

/* Bytes waiting to be written to the peer, and how many were written. */
const void *qmig_qmp_output(struct qmig_qmp *qmp, size_t *len);
void qmig_qmp_output_done(struct qmig_qmp *qmp, size_t n);

enum qmig_qmp_state qmig_qmp_state(const struct qmig_qmp *qmp);
int qmig_qmp_has_oob(const struct qmig_qmp *qmp);
/* The greeting's QMP.version.qemu as major*10000+minor*100+micro, 0 if unknown.
 * Informational only: capabilities come from the schema, never the version. */
unsigned qmig_qmp_qemu_version(const struct qmig_qmp *qmp);
void qmig_qmp_get_stats(const struct qmig_qmp *qmp, struct qmig_qmp_stats *out);
const char *qmig_qmp_error(const struct qmig_qmp *qmp);

/* ---- the connection ------------------------------------------------- */

#define QMIG_QMP_CONN_OPTS_VERSION 2

struct qmig_qmp_conn_opts {
	unsigned int version;
	int timeout_ms;                 /* connect+handshake, and default per command */
	struct qmig_qmp_limits limits;
	struct qmig_log_cb log;
};

#define QMIG_QMP_CONN_OPTS_INIT {QMIG_QMP_CONN_OPTS_VERSION, 10000, QMIG_QMP_LIMITS_INIT, {0, 0, 0}}

/* Event callback: runs from qmig_qmp_conn_process() and from inside
 * qmig_qmp_conn_call() when events arrive while waiting for a reply. */
struct qmig_qmp_event_cb {
	void (*fn)(const char *event, struct json_object *data, int64_t ts_sec,
		   int64_t ts_usec, void *user_data);
	void *user_data;
	void (*free)(void *user_data);
};

struct qmig_qmp_conn;

/* Connect and complete the handshake, bounded by opts->timeout_ms.
 * addr is a unix socket path, or "tcp:HOST:PORT". opts may be NULL. */
int qmig_qmp_conn_open(struct qmig_qmp_conn **out, const char *addr,
		       const struct qmig_qmp_conn_opts *opts);
/* Closes the socket fully, so the QEMU monitor is free for the next client. */
void qmig_qmp_conn_close(struct qmig_qmp_conn *conn);

/* Send a command and wait for its reply, at most timeout_ms (<0: the
 * connection's default). On success *ret (if non-NULL) receives the
 * "return" value, a new reference. An error reply gives -EREMOTEIO with
 * qmig_qmp_conn_error_class()/_error() set. -ETIMEDOUT when no reply. */
int qmig_qmp_conn_call(struct qmig_qmp_conn *conn, const char *cmd, struct json_object *args,
		       struct json_object **ret, int timeout_ms);
/* The same, passing fd to QEMU with SCM_RIGHTS alongside the command
 * (for getfd and add-fd). The caller keeps its own fd. */
int qmig_qmp_conn_call_fd(struct qmig_qmp_conn *conn, const char *cmd, struct json_object *args,
			  int fd, struct json_object **ret, int timeout_ms);

/* Event-loop use: the socket, and a non-blocking step that reads what is
 * there and dispatches events. Returns 0, or a negative errno when the
 * connection broke (-ECONNRESET on close). */
int qmig_qmp_conn_fd(const struct qmig_qmp_conn *conn);
int qmig_qmp_conn_process(struct qmig_qmp_conn *conn);
/* Replaces any earlier callback (its free runs). On error cb->free never runs. */
int qmig_qmp_conn_set_event_cb(struct qmig_qmp_conn *conn, const struct qmig_qmp_event_cb *cb);

const char *qmig_qmp_conn_error(const struct qmig_qmp_conn *conn);
const char *qmig_qmp_conn_error_class(const struct qmig_qmp_conn *conn);
struct qmig_qmp *qmig_qmp_conn_core(struct qmig_qmp_conn *conn);

/* ---- the schema ----------------------------------------------------- */

struct qmig_schema;

/* From a live QEMU (query-qmp-schema), or from its "return" array. */
int qmig_schema_probe(struct qmig_schema **out, struct qmig_qmp_conn *conn);
int qmig_schema_from_json(struct qmig_schema **out, struct json_object *schema_array);
void qmig_schema_free(struct qmig_schema *schema);

int qmig_schema_has_command(const struct qmig_schema *s, const char *command);
int qmig_schema_has_event(const struct qmig_schema *s, const char *event);
/* Does command take argument arg (top-level member of its arg-type)? */
int qmig_schema_has_arg(const struct qmig_schema *s, const char *command, const char *arg);
/* A migration capability (MigrationCapability enum member). */
int qmig_schema_has_capability(const struct qmig_schema *s, const char *cap);
/* A migration parameter (member of migrate-set-parameters' arguments). */
int qmig_schema_has_parameter(const struct qmig_schema *s, const char *param);
/* Does the enum that command's argument arg takes have value? */
int qmig_schema_has_enum_value(const struct qmig_schema *s, const char *command,
			       const char *arg, const char *value);
/* Every capability name, NULL-terminated, owned by the schema. */
const char *const *qmig_schema_capabilities(const struct qmig_schema *s);
/* Every parameter name, NULL-terminated, owned by the schema. */
const char *const *qmig_schema_parameters(const struct qmig_schema *s);

#ifdef __cplusplus
}
#endif
#endif
