/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The QMP protocol core: bytes in, messages out, never a socket.
 *
 * Framing: QEMU writes one JSON object per message, separated by CRLF.
 * We skip whitespace between messages ourselves and feed json-c's
 * incremental tokener only the bytes of the current message, so we always
 * know how large it is and whether the peer stopped half way. A message
 * must start with '{' (QMP has nothing else), which rejects garbage at its
 * first byte instead of after buffering it.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "qmp_int.h"

struct qm_buf {
	char *data;
	size_t off, len, cap;
};

struct qm_entry {
	struct qm_entry *next;
	struct qmig_qmp_msg msg;
};

struct qm_pending {
	uint64_t id;
	int abandoned; /* the caller gave up waiting: drop the reply quietly */
};

struct qmig_qmp {
	struct qmig_qmp_limits limits;
	struct qmig_log_cb log;
	enum qmig_qmp_state state;
	int err;
	char errmsg[256];

	struct json_tokener *tok;
	int in_msg;	  /* the tokener holds part of a message */
	size_t msg_bytes; /* bytes of the current message so far */

	struct qm_buf out, held;
	uint64_t next_id;
	uint64_t caps_id; /* our qmp_capabilities; 0 before the greeting */
	int caps_manual;  /* the caller sent qmp_capabilities itself */
	struct qm_pending *pend;
	size_t npend, cappend;

	struct qm_entry *head, **tail;
	size_t queued_events;

	int oob_offered, oob_enabled;
	unsigned version;
	struct qmig_qmp_stats stats;
};

void qm_qmp_log(struct qmig_qmp *qmp, enum qmig_log_level level, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (!qmp->log.fn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	qmp->log.fn(level, msg, qmp->log.user_data);
}

/* Break the stream for good: every later call returns the same error. */
static int fail(struct qmig_qmp *qmp, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct qmig_qmp *qmp, int err, const char *fmt, ...)
{
	va_list ap;

	if (qmp->err)
		return qmp->err;
	va_start(ap, fmt);
	vsnprintf(qmp->errmsg, sizeof(qmp->errmsg), fmt, ap);
	va_end(ap);
	qmp->err = err;
	qmp->state = QMIG_QMP_BROKEN;
	qm_qmp_log(qmp, QMIG_LOG_ERROR, "qmp: %s", qmp->errmsg);
	return err;
}

static int buf_append(struct qm_buf *b, const char *s, size_t n)
{
	if (b->off && b->off == b->len)
		b->off = b->len = 0;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		/* Reclaim the consumed front before growing. */
		if (b->off) {
			memmove(b->data, b->data + b->off, b->len - b->off);
			b->len -= b->off;
			b->off = 0;
		}
		while (cap < b->len + n)
			cap *= 2;
		if (cap != b->cap) {
			p = realloc(b->data, cap);
			if (!p)
				return -ENOMEM;
			b->data = p;
			b->cap = cap;
		}
	}
	memcpy(b->data + b->len, s, n);
	b->len += n;
	return 0;
}

int qmig_qmp_new(struct qmig_qmp **out, const struct qmig_qmp_limits *limits)
{
	struct qmig_qmp_limits def = QMIG_QMP_LIMITS_INIT;
	struct qmig_qmp *qmp;

	if (!out)
		return -EINVAL;
	if (!limits)
		limits = &def;
	if (limits->version != QMIG_QMP_LIMITS_VERSION || !limits->max_message ||
	    limits->max_depth < 2)
		return -EINVAL;
	qmp = calloc(1, sizeof(*qmp));
	if (!qmp)
		return -ENOMEM;
	qmp->limits = *limits;
	qmp->tok = json_tokener_new_ex(limits->max_depth);
	if (!qmp->tok) {
		free(qmp);
		return -ENOMEM;
	}
	/* Several messages may share one buffer: trailing bytes are the next one. */
	json_tokener_set_flags(qmp->tok, JSON_TOKENER_STRICT | JSON_TOKENER_ALLOW_TRAILING_CHARS);
	qmp->tail = &qmp->head;
	qmp->next_id = 1;
	*out = qmp;
	return 0;
}

void qmig_qmp_msg_clear(struct qmig_qmp_msg *msg)
{
	if (!msg)
		return;
	json_object_put(msg->root);
	memset(msg, 0, sizeof(*msg));
}

void qmig_qmp_free(struct qmig_qmp *qmp)
{
	struct qm_entry *e, *next;

	if (!qmp)
		return;
	for (e = qmp->head; e; e = next) {
		next = e->next;
		qmig_qmp_msg_clear(&e->msg);
		free(e);
	}
	if (qmp->log.free)
		qmp->log.free(qmp->log.user_data);
	if (qmp->tok)
		json_tokener_free(qmp->tok);
	free(qmp->out.data);
	free(qmp->held.data);
	free(qmp->pend);
	free(qmp);
}

void qm_qmp_take_log(struct qmig_qmp *qmp, const struct qmig_log_cb *log)
{
	if (log)
		qmp->log = *log;
	else
		memset(&qmp->log, 0, sizeof(qmp->log));
}

void qmig_qmp_set_log(struct qmig_qmp *qmp, const struct qmig_log_cb *log)
{
	if (!qmp)
		return;
	if (qmp->log.free)
		qmp->log.free(qmp->log.user_data);
	qm_qmp_take_log(qmp, log);
}

/* ---- sending ---------------------------------------------------------- */

static int pend_add(struct qmig_qmp *qmp, uint64_t id)
{
	if (qmp->npend == qmp->cappend) {
		size_t cap = qmp->cappend ? qmp->cappend * 2 : 8;
		struct qm_pending *p = realloc(qmp->pend, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		qmp->pend = p;
		qmp->cappend = cap;
	}
	qmp->pend[qmp->npend].id = id;
	qmp->pend[qmp->npend].abandoned = 0;
	qmp->npend++;
	return 0;
}

static struct qm_pending *pend_find(struct qmig_qmp *qmp, uint64_t id)
{
	for (size_t i = 0; i < qmp->npend; i++)
		if (qmp->pend[i].id == id)
			return &qmp->pend[i];
	return NULL;
}

static void pend_remove(struct qmig_qmp *qmp, struct qm_pending *p)
{
	size_t i = (size_t)(p - qmp->pend);

	memmove(p, p + 1, (qmp->npend - i - 1) * sizeof(*p));
	qmp->npend--;
}

size_t qm_qmp_pending(const struct qmig_qmp *qmp)
{
	size_t n = 0;

	for (size_t i = 0; i < qmp->npend; i++)
		n += !qmp->pend[i].abandoned;
	return n;
}

void qm_qmp_forget(struct qmig_qmp *qmp, uint64_t id)
{
	struct qm_pending *p = pend_find(qmp, id);

	if (p)
		p->abandoned = 1;
}

int qm_qmp_mid_message(const struct qmig_qmp *qmp)
{
	return qmp->in_msg;
}

/* Serialize {"execute"|"exec-oob": name, "arguments": args, "id": id}. */
static int encode(struct qm_buf *b, const char *name, struct json_object *args, int oob,
		  uint64_t id)
{
	struct json_object *o = json_object_new_object();
	const char *s;
	size_t n;
	int r = -ENOMEM;

	if (!o)
		return -ENOMEM;
	if (json_object_object_add(o, oob ? "exec-oob" : "execute", json_object_new_string(name)))
		goto out;
	if (args && json_object_object_add(o, "arguments", json_object_get(args)))
		goto out;
	if (json_object_object_add(o, "id", json_object_new_uint64(id)))
		goto out;
	s = json_object_to_json_string_length(
	    o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
	if (!s)
		goto out;
	r = buf_append(b, s, n);
	if (!r)
		r = buf_append(b, "\r\n", 2);
out:
	json_object_put(o);
	return r;
}

int qmig_qmp_command(struct qmig_qmp *qmp, const char *name, struct json_object *args, int oob,
		     uint64_t *id_out)
{
	int caps = name && !strcmp(name, "qmp_capabilities");
	uint64_t id;
	int r;

	if (!qmp || !name || !*name || (args && !json_object_is_type(args, json_type_object)))
		return -EINVAL;
	if (qmp->err)
		return qmp->err;
	if (oob && !(qmp->state == QMIG_QMP_READY && qmp->oob_enabled)) {
		snprintf(qmp->errmsg, sizeof(qmp->errmsg),
			 "out-of-band execution of %s needs a negotiated oob connection", name);
		return -EOPNOTSUPP;
	}
	id = qmp->next_id++;
	r = pend_add(qmp, id);
	if (r < 0)
		return r;
	if (caps && qmp->state == QMIG_QMP_WAIT_GREETING && !qmp->caps_id) {
		/* The caller negotiates itself: do not send a second one. */
		qmp->caps_manual = 1;
		qmp->caps_id = id;
	}
	if (qmp->state == QMIG_QMP_READY || caps)
		r = encode(&qmp->out, name, args, oob, id);
	else
		r = encode(&qmp->held, name, args, oob, id);
	if (r < 0) {
		pend_remove(qmp, pend_find(qmp, id));
		return r;
	}
	if (id_out)
		*id_out = id;
	return 0;
}

const void *qmig_qmp_output(struct qmig_qmp *qmp, size_t *len)
{
	*len = qmp->out.len - qmp->out.off;
	return qmp->out.data + qmp->out.off;
}

void qmig_qmp_output_done(struct qmig_qmp *qmp, size_t n)
{
	if (n > qmp->out.len - qmp->out.off)
		n = qmp->out.len - qmp->out.off;
	qmp->out.off += n;
	qmp->stats.bytes_out += n;
	if (qmp->out.off == qmp->out.len)
		qmp->out.off = qmp->out.len = 0;
}

/* ---- receiving -------------------------------------------------------- */

static void enqueue(struct qmig_qmp *qmp, struct qm_entry *e)
{
	e->next = NULL;
	*qmp->tail = e;
	qmp->tail = &e->next;
}

int qmig_qmp_next(struct qmig_qmp *qmp, struct qmig_qmp_msg *msg)
{
	struct qm_entry *e = qmp->head;

	if (!e)
		return 0;
	qmp->head = e->next;
	if (!qmp->head)
		qmp->tail = &qmp->head;
	if (e->msg.kind == QMIG_QMP_MSG_EVENT)
		qmp->queued_events--;
	*msg = e->msg;
	free(e);
	return 1;
}

static const char *get_str(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return NULL;
	return json_object_get_string(v);
}

static int64_t get_int(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return 0;
	return json_object_get_int64(v);
}

static int on_greeting(struct qmig_qmp *qmp, struct json_object *root)
{
	struct json_object *qmpo, *ver = NULL, *caps = NULL, *args;
	int r;

	json_object_object_get_ex(root, "QMP", &qmpo);
	if (qmp->state != QMIG_QMP_WAIT_GREETING)
		return fail(qmp, -EPROTO, "second greeting from the peer");
	if (json_object_object_get_ex(qmpo, "version", &ver) &&
	    json_object_object_get_ex(ver, "qemu", &ver))
		qmp->version = (unsigned)(get_int(ver, "major") * 10000 +
					  get_int(ver, "minor") * 100 + get_int(ver, "micro"));
	if (json_object_object_get_ex(qmpo, "capabilities", &caps) &&
	    json_object_is_type(caps, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(caps); i++) {
			struct json_object *c = json_object_array_get_idx(caps, i);

			if (json_object_is_type(c, json_type_string) &&
			    !strcmp(json_object_get_string(c), "oob"))
				qmp->oob_offered = 1;
		}
	}
	qm_qmp_log(qmp, QMIG_LOG_DEBUG, "qmp: greeting from QEMU %u%s", qmp->version,
		   qmp->oob_offered ? ", oob offered" : "");
	qmp->state = QMIG_QMP_NEGOTIATING;
	if (qmp->caps_manual)
		return 0;
	args = json_object_new_object();
	if (!args)
		return fail(qmp, -ENOMEM, "out of memory");
	if (qmp->oob_offered) {
		struct json_object *en = json_object_new_array();

		json_object_array_add(en, json_object_new_string("oob"));
		json_object_object_add(args, "enable", en);
	}
	qmp->caps_id = qmp->next_id++;
	r = pend_add(qmp, qmp->caps_id);
	if (!r)
		r = encode(&qmp->out, "qmp_capabilities", args, 0, qmp->caps_id);
	json_object_put(args);
	return r < 0 ? fail(qmp, r, "cannot queue qmp_capabilities") : 0;
}

static int on_caps_reply(struct qmig_qmp *qmp, struct json_object *err)
{
	if (err)
		return fail(qmp, -EPROTO, "qmp_capabilities refused: %s",
			    get_str(err, "desc") ? get_str(err, "desc") : "(no description)");
	qmp->state = QMIG_QMP_READY;
	qmp->oob_enabled = qmp->oob_offered && !qmp->caps_manual;
	if (qmp->held.len > qmp->held.off) {
		int r = buf_append(&qmp->out, qmp->held.data + qmp->held.off,
				   qmp->held.len - qmp->held.off);
		if (r < 0)
			return fail(qmp, r, "out of memory");
		qmp->held.off = qmp->held.len = 0;
	}
	return 0;
}

static int on_event(struct qmig_qmp *qmp, struct json_object *root, const char *name)
{
	struct json_object *ts = NULL;
	struct qm_entry *e;

	qmp->stats.events++;
	if (qmp->queued_events >= qmp->limits.max_pending_events) {
		qmp->stats.events_dropped++;
		qm_qmp_log(qmp, QMIG_LOG_WARN, "qmp: %zu events not taken, dropping %s",
			   qmp->queued_events, name);
		json_object_put(root);
		return 0;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		json_object_put(root);
		return fail(qmp, -ENOMEM, "out of memory");
	}
	e->msg.kind = QMIG_QMP_MSG_EVENT;
	e->msg.event = name;
	e->msg.root = root;
	json_object_object_get_ex(root, "data", &e->msg.data);
	if (json_object_object_get_ex(root, "timestamp", &ts)) {
		e->msg.ts_sec = get_int(ts, "seconds");
		e->msg.ts_usec = get_int(ts, "microseconds");
	}
	qmp->queued_events++;
	enqueue(qmp, e);
	return 0;
}

static int reply_id(struct json_object *root, uint64_t *id)
{
	struct json_object *v;

	if (!json_object_object_get_ex(root, "id", &v) || !json_object_is_type(v, json_type_int))
		return -1;
	*id = json_object_get_uint64(v);
	return 0;
}

static int on_reply(struct qmig_qmp *qmp, struct json_object *root, struct json_object *ret,
		    struct json_object *err)
{
	struct qm_pending *p = NULL;
	struct qm_entry *e;
	uint64_t id = 0;

	if (reply_id(root, &id) == 0)
		p = pend_find(qmp, id);
	if (!p) {
		qmp->stats.unknown_ids++;
		qm_qmp_log(qmp, QMIG_LOG_WARN, "qmp: dropping a reply with unknown id: %.200s",
			   json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
		goto drop;
	}
	if (err && !json_object_is_type(err, json_type_object))
		return fail(qmp, -EPROTO, "error reply is not an object");
	if (p->abandoned) {
		qm_qmp_log(qmp, QMIG_LOG_DEBUG, "qmp: late reply to id %llu dropped",
			   (unsigned long long)id);
		pend_remove(qmp, p);
		goto drop;
	}
	pend_remove(qmp, p);
	if (id == qmp->caps_id && qmp->state == QMIG_QMP_NEGOTIATING) {
		int r = on_caps_reply(qmp, err);

		if (r < 0 || !qmp->caps_manual)
			goto drop_r;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		json_object_put(root);
		return fail(qmp, -ENOMEM, "out of memory");
	}
	e->msg.id = id;
	e->msg.root = root;
	if (err) {
		e->msg.kind = QMIG_QMP_MSG_ERROR;
		e->msg.err_class = get_str(err, "class") ? get_str(err, "class") : "GenericError";
		e->msg.err_desc = get_str(err, "desc") ? get_str(err, "desc") : "(no description)";
	} else {
		e->msg.kind = QMIG_QMP_MSG_REPLY;
		e->msg.data = ret;
	}
	enqueue(qmp, e);
	return 0;
drop:
	json_object_put(root);
	return 0;
drop_r:
	json_object_put(root);
	return qmp->err;
}

/* One complete message; takes the reference to root. */
static int dispatch(struct qmig_qmp *qmp, struct json_object *root)
{
	struct json_object *v, *ret = NULL, *err = NULL;
	const char *ev;
	int r;

	qmp->stats.messages++;
	if (json_object_object_get_ex(root, "QMP", &v)) {
		r = on_greeting(qmp, root);
		json_object_put(root);
		return r;
	}
	ev = get_str(root, "event");
	if (ev)
		return on_event(qmp, root, ev);
	if (json_object_object_get_ex(root, "return", &ret) ||
	    json_object_object_get_ex(root, "error", &err))
		return on_reply(qmp, root, ret, err);
	r = fail(qmp, -EPROTO, "message is neither a reply, an event nor a greeting: %.120s",
		 json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	json_object_put(root);
	return r;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Parse from p; returns bytes consumed or a negative errno. */
static long parse_some(struct qmig_qmp *qmp, const char *p, size_t n)
{
	size_t room = qmp->limits.max_message - qmp->msg_bytes;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t used;

	if (n > room)
		n = room;
	if (n > INT_MAX / 2)
		n = INT_MAX / 2;
	obj = json_tokener_parse_ex(qmp->tok, p, (int)n);
	jerr = json_tokener_get_error(qmp->tok);
	if (obj) {
		used = json_tokener_get_parse_end(qmp->tok);
		json_tokener_reset(qmp->tok);
		qmp->in_msg = 0;
		qmp->msg_bytes = 0;
		if (dispatch(qmp, obj) < 0)
			return qmp->err;
		return (long)used;
	}
	if (jerr == json_tokener_continue) {
		qmp->msg_bytes += n;
		if (qmp->msg_bytes >= qmp->limits.max_message)
			return fail(qmp, -EMSGSIZE, "message larger than %zu bytes",
				    qmp->limits.max_message);
		return (long)n;
	}
	if (jerr == json_tokener_error_depth)
		return fail(qmp, -ELOOP, "message nested deeper than %d levels",
			    qmp->limits.max_depth);
	return fail(qmp, -EPROTO, "bad JSON from the peer: %s", json_tokener_error_desc(jerr));
}

int qmig_qmp_feed(struct qmig_qmp *qmp, const void *buf, size_t len)
{
	const char *p = buf, *end = p + len;
	long n;

	if (!qmp || (!buf && len))
		return -EINVAL;
	if (qmp->err)
		return qmp->err;
	qmp->stats.bytes_in += len;
	while (p < end) {
		if (!qmp->in_msg) {
			while (p < end && is_ws(*p))
				p++;
			if (p == end)
				break;
			if (*p != '{')
				return fail(qmp, -EPROTO,
					    "garbage from the peer: byte 0x%02x where a message "
					    "should start",
					    (unsigned char)*p);
			qmp->in_msg = 1;
		}
		n = parse_some(qmp, p, (size_t)(end - p));
		if (n < 0)
			return (int)n;
		p += n;
	}
	return 0;
}

int qmig_qmp_eof(struct qmig_qmp *qmp)
{
	size_t n;

	if (qmp->err)
		return qmp->err;
	if (qmp->in_msg)
		return fail(qmp, -ECONNRESET,
			    "peer closed in the middle of a message "
			    "(%zu bytes received)",
			    qmp->msg_bytes);
	n = qm_qmp_pending(qmp);
	if (n)
		return fail(qmp, -ECONNRESET, "peer closed with %zu command%s unanswered", n,
			    n == 1 ? "" : "s");
	if (qmp->state != QMIG_QMP_READY)
		return fail(qmp, -ECONNRESET, "peer closed before the handshake completed");
	return 0;
}

enum qmig_qmp_state qmig_qmp_state(const struct qmig_qmp *qmp)
{
	return qmp->state;
}

int qmig_qmp_has_oob(const struct qmig_qmp *qmp)
{
	return qmp->oob_enabled;
}

unsigned qmig_qmp_qemu_version(const struct qmig_qmp *qmp)
{
	return qmp->version;
}

void qmig_qmp_get_stats(const struct qmig_qmp *qmp, struct qmig_qmp_stats *out)
{
	*out = qmp->stats;
}

const char *qmig_qmp_error(const struct qmig_qmp *qmp)
{
	return qmp->errmsg[0] ? qmp->errmsg : "no error";
}
