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
 *
 * Memory: before json-c sees a byte, a scanner counts what the message
 * will cost (containers, elements, nesting) and finds where it ends, so
 * a message over a limit is refused before json-c builds it; json-c
 * turns 3 bytes of "{}," into ~790 bytes of objects, so a byte limit
 * alone bounds nothing. Messages are read with the typed accessors of
 * qmp_reply.h like every reply.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "qmp_int.h"
#include "qmp_reply.h"

/* Parse cost (qmig_qmp_limits.max_nodes) of what the scanner sees,
 * measured with json-c 0.16: ~790 bytes per empty object, ~150 per
 * array, ~80 per scalar or member. */
#define QM_COST_OBJECT 10
#define QM_COST_ARRAY 2

struct qm_buf {
	char *data;
	size_t off, len, cap;
};

struct qm_entry {
	struct qm_entry *next;
	size_t cost;
	struct qmig_qmp_msg msg;
};

/* The scanner's view of the current message. */
struct qm_scan {
	int depth;
	int str, esc;   /* inside a string, after a backslash */
	size_t cost;
	size_t *commas; /* per nesting level, [0..max_depth] */
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
	struct qm_scan scan;

	struct qm_buf out, held;
	uint64_t next_id;
	uint64_t caps_id; /* our qmp_capabilities; 0 before the greeting */
	int caps_manual;  /* the caller sent qmp_capabilities itself */
	struct qm_pending *pend;
	size_t npend, cappend;

	struct qm_entry *head, **tail;
	size_t queued_events;
	size_t queued_cost; /* of the events queued */

	int oob_offered, oob_enabled;
	unsigned version;
	unsigned stale; /* replies dropped as an earlier client's leftovers */
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
	    limits->max_depth < 2 || limits->max_depth > 4096 || !limits->max_elements ||
	    !limits->max_nodes || !limits->max_greeting)
		return -EINVAL;
	qmp = calloc(1, sizeof(*qmp));
	if (!qmp)
		return -ENOMEM;
	qmp->limits = *limits;
	qmp->scan.commas = calloc((size_t)limits->max_depth + 1, sizeof(*qmp->scan.commas));
	/* One level more than ours, so that the scanner names the limit. */
	qmp->tok = json_tokener_new_ex(limits->max_depth + 1);
	if (!qmp->tok || !qmp->scan.commas) {
		if (qmp->tok)
			json_tokener_free(qmp->tok);
		free(qmp->scan.commas);
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
	free(qmp->scan.commas);
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

void qm_qmp_set_next_id(struct qmig_qmp *qmp, uint64_t id)
{
	if (qmp && id && qmp->state == QMIG_QMP_WAIT_GREETING && !qmp->npend)
		qmp->next_id = id;
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
	/* Nothing queued yet: no buffer either (NULL + 0 is undefined). */
	return qmp->out.data ? qmp->out.data + qmp->out.off : "";
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
	if (e->msg.kind == QMIG_QMP_MSG_EVENT) {
		qmp->queued_events--;
		qmp->queued_cost -= e->cost;
	}
	*msg = e->msg;
	free(e);
	return 1;
}

/* A message of the wrong shape breaks the stream with the reader's words. */
static int fail_rd(struct qmig_qmp *qmp, struct qm_rd *rd)
{
	return fail(qmp, rd->err, "%s", rd->msg);
}

/* major*10000 + minor*100 + micro, 0 when a part is out of its range
 * (the number is informational; a peer's huge numbers must not overflow). */
static unsigned greeting_version(struct qm_rd *rd, struct json_object *qemu)
{
	int64_t ma, mi, mc;

	if (!qemu)
		return 0;
	ma = qm_rd_opt_i64(rd, qemu, "major", 0);
	mi = qm_rd_opt_i64(rd, qemu, "minor", 0);
	mc = qm_rd_opt_i64(rd, qemu, "micro", 0);
	if (ma < 0 || ma > 9999 || mi < 0 || mi > 99 || mc < 0 || mc > 99)
		return 0;
	return (unsigned)(ma * 10000 + mi * 100 + mc);
}

static int on_greeting(struct qmig_qmp *qmp, struct json_object *root)
{
	struct json_object *qmpo, *ver, *caps, *args;
	struct qm_rd rd;
	int r;

	if (qmp->state != QMIG_QMP_WAIT_GREETING)
		return fail(qmp, -EPROTO, "second greeting from the peer");
	qm_rd_init(&rd, "greeting");
	qmpo = qm_rd_obj(&rd, root, "QMP");
	ver = qm_rd_opt_obj(&rd, qmpo, "version");
	if (ver)
		qmp->version = greeting_version(&rd, qm_rd_opt_obj(&rd, ver, "qemu"));
	caps = qm_rd_opt_arr(&rd, qmpo, "capabilities");
	for (size_t i = 0; i < qm_rd_len(&rd, caps); i++) {
		const char *c = qm_rd_idx_str(&rd, caps, i);

		if (c && !strcmp(c, "oob"))
			qmp->oob_offered = 1;
	}
	if (rd.err)
		return fail_rd(qmp, &rd);
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

static int on_caps_reply(struct qmig_qmp *qmp, const char *err_desc)
{
	if (err_desc)
		return fail(qmp, -EPROTO, "qmp_capabilities refused: %s", err_desc);
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

/* QEMU's timestamps are the wall clock in seconds and microseconds; a
 * value a caller cannot turn into microseconds without overflow is a lie. */
#define QM_MAX_TS_SEC (INT64_MAX / 1000000 - 1)

static int on_event(struct qmig_qmp *qmp, struct json_object *root, const char *name,
		    size_t cost)
{
	struct json_object *ts;
	struct qm_entry *e;
	struct qm_rd rd;
	char what[96];

	snprintf(what, sizeof(what), "event %.64s", name);
	qm_rd_init(&rd, what);
	qmp->stats.events++;
	e = calloc(1, sizeof(*e));
	if (!e) {
		json_object_put(root);
		return fail(qmp, -ENOMEM, "out of memory");
	}
	e->cost = cost;
	e->msg.kind = QMIG_QMP_MSG_EVENT;
	e->msg.event = name;
	e->msg.root = root;
	if (qm_rd_has(&rd, root, "data"))
		e->msg.data = qm_rd_obj(&rd, root, "data");
	ts = qm_rd_opt_obj(&rd, root, "timestamp");
	if (ts) {
		e->msg.ts_sec = qm_rd_i64(&rd, ts, "seconds");
		e->msg.ts_usec = qm_rd_i64(&rd, ts, "microseconds");
		/* QEMU sends -1/-1 when its clock failed. */
		if (!rd.err && !(e->msg.ts_sec == -1 && e->msg.ts_usec == -1) &&
		    (e->msg.ts_sec < 0 || e->msg.ts_sec > QM_MAX_TS_SEC || e->msg.ts_usec < 0 ||
		     e->msg.ts_usec > 999999))
			qm_rd_fail(&rd, "timestamp %lld.%06lld is out of range",
				   (long long)e->msg.ts_sec, (long long)e->msg.ts_usec);
	}
	if (rd.err) {
		qmig_qmp_msg_clear(&e->msg);
		free(e);
		return fail_rd(qmp, &rd);
	}
	/* Events wait for the caller: bounded in number and in what they cost. */
	if (qmp->queued_events >= qmp->limits.max_pending_events ||
	    qmp->queued_cost + cost > qmp->limits.max_nodes) {
		qmp->stats.events_dropped++;
		qm_qmp_log(qmp, QMIG_LOG_WARN, "qmp: %zu events not taken, dropping %s",
			   qmp->queued_events, what);
		qmig_qmp_msg_clear(&e->msg);
		free(e);
		return 0;
	}
	qmp->queued_events++;
	qmp->queued_cost += cost;
	enqueue(qmp, e);
	return 0;
}

/* Leftover replies accepted before our qmp_capabilities is answered. */
#define QM_MAX_STALE 16

static int on_reply(struct qmig_qmp *qmp, struct json_object *root, int is_error)
{
	struct qm_pending *p = NULL;
	struct json_object *err = NULL, *ret = NULL;
	const char *cls = NULL, *desc = NULL;
	struct qm_entry *e;
	struct qm_rd rd;
	uint64_t id = 0;

	qm_rd_init(&rd, is_error ? "error reply" : "reply");
	if (is_error) {
		err = qm_rd_obj(&rd, root, "error");
		cls = qm_rd_opt_str(&rd, err, "class", "GenericError");
		desc = qm_rd_opt_str(&rd, err, "desc", "(no description)");
	} else {
		qm_rd_has(&rd, root, "return"); /* present: checked by the caller */
	}
	if (!qm_rd_has(&rd, root, "id") && !rd.err) {
		qmp->stats.unknown_ids++;
		if (is_error)
			return fail(qmp, -EPROTO, "error reply without an id: %.200s", desc);
		return fail(qmp, -EPROTO, "reply without an id");
	}
	id = qm_rd_u64(&rd, root, "id");
	if (rd.err)
		return fail_rd(qmp, &rd);
	p = pend_find(qmp, id);
	if (!p && qmp->state == QMIG_QMP_NEGOTIATING && qmp->stale < QM_MAX_STALE) {
		/* QEMU's monitor is one chardev: a command of the client before
		 * us that was still running when that client went away is
		 * answered on our connection, after our greeting and before the
		 * answer to our qmp_capabilities (the dispatcher runs one command
		 * at a time). It answers nothing of ours: drop it, a few at most. */
		qmp->stale++;
		qm_qmp_log(qmp, QMIG_LOG_WARN,
			   "qmp: dropped a reply with id %llu left by an earlier client of this monitor",
			   (unsigned long long)id);
		goto drop;
	}
	if (!p) {
		/* Not in flight: answered already, or never sent. QEMU answers
		 * each command once, with its id; a peer that does not is lying
		 * about what it ran, and nothing it says can be trusted. */
		qmp->stats.unknown_ids++;
		return fail(qmp, -EPROTO, "reply with id %llu, which answers no command in flight",
			    (unsigned long long)id);
	}
	if (p->abandoned) {
		qm_qmp_log(qmp, QMIG_LOG_DEBUG, "qmp: late reply to id %llu dropped",
			   (unsigned long long)id);
		pend_remove(qmp, p);
		goto drop;
	}
	pend_remove(qmp, p);
	if (id == qmp->caps_id && qmp->state == QMIG_QMP_NEGOTIATING) {
		int r = on_caps_reply(qmp, desc);

		if (r < 0 || !qmp->caps_manual)
			goto drop_r;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return fail(qmp, -ENOMEM, "out of memory");
	e->msg.id = id;
	e->msg.root = root;
	if (is_error) {
		e->msg.kind = QMIG_QMP_MSG_ERROR;
		e->msg.err_class = cls;
		e->msg.err_desc = desc;
	} else {
		/* The value itself may be anything: its reader checks it. */
		ret = qm_rd_any(&rd, root, "return");
		e->msg.kind = QMIG_QMP_MSG_REPLY;
		e->msg.data = ret;
	}
	enqueue(qmp, e);
	return 1;
drop:
	return 0;
drop_r:
	return qmp->err;
}

/* One complete message of the given parse cost; takes the reference to root. */
static int dispatch(struct qmig_qmp *qmp, struct json_object *root, size_t cost)
{
	struct qm_rd rd;
	const char *ev;
	int has_ret, has_err, r;

	qmp->stats.messages++;
	qm_rd_init(&rd, "message");
	if (qm_rd_has(&rd, root, "QMP")) {
		r = on_greeting(qmp, root);
		json_object_put(root);
		return r;
	}
	ev = qm_rd_opt_str(&rd, root, "event", NULL);
	if (rd.err) {
		json_object_put(root);
		return fail_rd(qmp, &rd);
	}
	if (ev)
		return on_event(qmp, root, ev, cost);
	has_ret = qm_rd_has(&rd, root, "return");
	has_err = qm_rd_has(&rd, root, "error");
	if (has_ret && has_err)
		r = fail(qmp, -EPROTO, "reply carries both 'return' and 'error'");
	else if (has_ret || has_err)
		r = on_reply(qmp, root, has_err);
	else
		r = fail(qmp, -EPROTO,
			 "message is neither a reply, an event nor a greeting: %.120s",
			 json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN));
	if (r <= 0)
		json_object_put(root);
	return r < 0 ? r : 0;
}

static int is_ws(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The limit on bytes of the current message: the greeting has its own. */
static size_t msg_limit(const struct qmig_qmp *qmp, const char **name)
{
	if (qmp->state == QMIG_QMP_WAIT_GREETING) {
		*name = "max_greeting";
		return qmp->limits.max_greeting;
	}
	*name = "max_message";
	return qmp->limits.max_message;
}

static void scan_reset(struct qm_scan *s)
{
	s->depth = 0;
	s->str = s->esc = 0;
	s->cost = 0;
}

/* Look at the next n bytes of the current message before json-c does:
 * count their cost and find where the message ends. Returns how many
 * bytes belong to it (n, or up to and including its closing brace with
 * *done set), or a negative errno when a limit is exceeded. Malformed
 * JSON is json-c's to reject; the scanner only has to agree with it on
 * strings, which it does in strict mode. */
static long scan(struct qmig_qmp *qmp, const char *p, size_t n, int *done)
{
	const struct qmig_qmp_limits *lim = &qmp->limits;
	struct qm_scan *s = &qmp->scan;

	*done = 0;
	for (size_t i = 0; i < n; i++) {
		char ch = p[i];

		if (s->str) {
			if (s->esc)
				s->esc = 0;
			else if (ch == '\\')
				s->esc = 1;
			else if (ch == '"')
				s->str = 0;
			continue;
		}
		switch (ch) {
		case '"':
			s->str = 1;
			break;
		case '{':
		case '[':
			if (s->depth >= lim->max_depth)
				return fail(qmp, -ELOOP,
					    "message nested deeper than %d levels (limit max_depth)",
					    lim->max_depth);
			s->commas[++s->depth] = 0;
			s->cost += ch == '{' ? QM_COST_OBJECT : QM_COST_ARRAY;
			break;
		case '}':
		case ']':
			if (s->depth > 0 && --s->depth == 0) {
				*done = 1;
				return (long)(i + 1);
			}
			break;
		case ',':
			/* elements = commas + 1 */
			if (++s->commas[s->depth] >= lim->max_elements)
				return fail(qmp, -EMSGSIZE,
					    "message has an array or object of more than %zu "
					    "elements (limit max_elements)",
					    lim->max_elements);
			s->cost++;
			break;
		case ':':
			s->cost++;
			break;
		}
		if (s->cost > lim->max_nodes)
			return fail(qmp, -EMSGSIZE,
				    "message would cost more than %zu parse nodes (limit "
				    "max_nodes; an object counts %d, an array %d, a member 1-2)",
				    lim->max_nodes, QM_COST_OBJECT, QM_COST_ARRAY);
	}
	return (long)n;
}

/* Parse from p; returns bytes consumed or a negative errno. */
static long parse_some(struct qmig_qmp *qmp, const char *p, size_t n)
{
	const char *lname;
	size_t limit = msg_limit(qmp, &lname), room;
	struct json_object *obj;
	enum json_tokener_error jerr;
	size_t used;
	long m;
	int done;

	room = limit > qmp->msg_bytes ? limit - qmp->msg_bytes : 0;
	if (n > room)
		n = room;
	if (n > INT_MAX / 2)
		n = INT_MAX / 2;
	m = scan(qmp, p, n, &done);
	if (m < 0)
		return m;
	if (!done && qmp->msg_bytes + (size_t)m >= limit)
		return fail(qmp, -EMSGSIZE, "%s larger than %zu bytes (limit %s)",
			    qmp->state == QMIG_QMP_WAIT_GREETING ? "greeting" : "message", limit,
			    lname);
	obj = json_tokener_parse_ex(qmp->tok, p, (int)m);
	jerr = json_tokener_get_error(qmp->tok);
	if (obj) {
		size_t cost = qmp->scan.cost;

		used = json_tokener_get_parse_end(qmp->tok);
		json_tokener_reset(qmp->tok);
		scan_reset(&qmp->scan);
		qmp->in_msg = 0;
		qmp->msg_bytes = 0;
		if (dispatch(qmp, obj, cost) < 0)
			return qmp->err;
		return (long)used;
	}
	if (jerr == json_tokener_continue && !done) {
		qmp->msg_bytes += (size_t)m;
		return m;
	}
	if (jerr == json_tokener_error_depth)
		return fail(qmp, -ELOOP, "message nested deeper than %d levels (limit max_depth)",
			    qmp->limits.max_depth);
	return fail(qmp, -EPROTO, "bad JSON from the peer: %s",
		    jerr == json_tokener_continue ? "unbalanced brackets"
						  : json_tokener_error_desc(jerr));
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
			scan_reset(&qmp->scan);
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
