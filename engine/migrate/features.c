/* Newer QEMU migration features, used when the QEMUs have them. Each is
 * probed from what the QEMUs say they have (the schema, the capability
 * and parameter lists), never from a version number, and each decision is
 * a "plan" record (side "qmigrate", command "feature") with its reason,
 * so --dry-run and `qmigrate caps` show it:
 *
 *  - zero-page-detection=multifd: with multifd, zero pages are found by
 *    the multifd threads in parallel instead of the main thread; used when
 *    both QEMUs have the parameter and its "multifd" value.
 *  - multifd-compression (--compress METHOD): asked for, never automatic;
 *    both QEMUs' schemas must list the method (a method QEMU was built
 *    without is not in its schema), else the request is refused by name.
 *  - switchover-ack: the destination tells the source when it is ready to
 *    switch over; only devices with a switchover cost (VFIO) ask for it.
 *    Used when both QEMUs have the capability and the destination has a
 *    VFIO device (qom-list of /machine/peripheral and peripheral-anon), or
 *    when asked for with --cap switchover-ack; it needs return-path, which
 *    is then enabled too.
 *  - channels: migrate and migrate-incoming take their address as a
 *    "channels" list instead of a URI string when both schemas have the
 *    argument (the URI form is kept otherwise).
 *  - avail-switchover-bandwidth: a source parameter QEMU uses instead of
 *    its own estimate when it decides whether the rest fits in the
 *    downtime limit. During precopy the engine sets it to the highest
 *    smoothed bandwidth its monitor has measured (capped by max-bandwidth)
 *    each time that rises by a tenth; restored afterwards like every
 *    parameter. Used when the source has the parameter.
 *
 * Options: multifd_compression, features_off (QMIG_FEATURE_* bits). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate.h"
#include "journal/journal.h"
#include "qmp_reply.h"

static const char *const names[QM_F_COUNT] = {
	[QM_F_ZERO_PAGE] = "zero-page-detection",
	[QM_F_COMPRESS] = "multifd-compression",
	[QM_F_SWITCHOVER_ACK] = "switchover-ack",
	[QM_F_CHANNELS] = "channels",
	[QM_F_AVAIL_BW] = "avail-switchover-bandwidth",
};

/* The public bit that turns each automatic feature off. */
static const unsigned off_bit[QM_F_COUNT] = {
	[QM_F_ZERO_PAGE] = QMIG_FEATURE_ZERO_PAGE_DETECTION,
	[QM_F_SWITCHOVER_ACK] = QMIG_FEATURE_SWITCHOVER_ACK,
	[QM_F_CHANNELS] = QMIG_FEATURE_CHANNELS,
	[QM_F_AVAIL_BW] = QMIG_FEATURE_AVAIL_SWITCHOVER_BANDWIDTH,
};

const char *qm_feature_name(enum qm_feature f)
{
	return f < QM_F_COUNT ? names[f] : "?";
}

__attribute__((format(printf, 4, 5))) static void decide(struct qm_features *ft,
							 enum qm_feature f, int used,
							 const char *fmt, ...)
{
	va_list ap;

	ft->used[f] = used;
	va_start(ap, fmt);
	vsnprintf(ft->why[f], sizeof(ft->why[f]), fmt, ap);
	va_end(ap);
}

/* Presence in an object (the query replies, validated when they were
 * parsed, or the plan's own set of wanted capabilities). */
static int has_key(struct json_object *o, const char *name)
{
	struct qm_rd rd;

	qm_rd_init(&rd, "features");
	return o && qm_rd_has(&rd, o, name);
}

static int has_param(struct side *s, const char *name)
{
	return has_key(s->orig_params, name);
}

static int has_cap(struct side *s, const char *name)
{
	return has_key(s->orig_caps, name);
}

/* Which side lacks it, for the reason: "the source QEMU", ... */
static const char *lacking(const int has[2])
{
	if (!has[SRC] && !has[DST])
		return "neither QEMU has";
	return has[SRC] ? "the destination QEMU lacks" : "the source QEMU lacks";
}

/* A device on the destination that takes part in switchover-ack: VFIO
 * (vfio-pci and its kin) is the one kind in QEMU that does. */
static int dst_needs_ack(struct qmig_migration *m, char *dev, size_t len)
{
	static const char *const dirs[] = {"/machine/peripheral", "/machine/peripheral-anon"};
	struct side *d = &m->side[DST];

	for (size_t k = 0; k < 2; k++) {
		struct json_object *ret = NULL;
		struct qm_rd rd;
		int r, found = 0;

		r = qmig_cmd_qom_list(d->qmp, dirs[k], &ret);
		qm_rd_init(&rd, "qom-list");
		if (r == 0 && qm_rd_as_arr(&rd, ret)) {
			for (size_t i = 0; !found && i < qm_rd_len(&rd, ret); i++) {
				struct json_object *p = qm_rd_idx_obj(&rd, ret, i);
				const char *type = p ? qm_rd_opt_str(&rd, p, "type", "") : "";
				const char *name = p ? qm_rd_opt_str(&rd, p, "name", "") : "";

				if (rd.err)
					break;
				if (!strncmp(type, "child<vfio", 10)) {
					snprintf(dev, len, "%s (%.*s)", name,
						 (int)(strlen(type) - 7), type + 6);
					found = 1;
				}
			}
		}
		json_object_put(ret);
		if (found)
			return 1;
	}
	return 0;
}

int qm_features_plan(struct qmig_migration *m, struct json_object *want)
{
	struct qm_features *ft = m->feat;
	struct side *s = &m->side[SRC], *d = &m->side[DST];
	struct qmig_schema *ss, *ds;
	const char *c = m->o.multifd_compression;
	char dev[128];

	if (!ft && !(ft = m->feat = calloc(1, sizeof(*ft))))
		return qm_fail(m, -ENOMEM, "plan: %s", strerror(ENOMEM));
	memset(ft, 0, sizeof(*ft));
	ft->decided = 1;
	ss = qm_side_schema(m, s);
	ds = qm_side_schema(m, d);

	/* zero-page-detection=multifd */
	for (int i = 0; i < 2; i++)
		ft->has[QM_F_ZERO_PAGE][i] =
			has_param(&m->side[i], "zero-page-detection") &&
			qmig_schema_has_enum_value(i ? ds : ss, "migrate-set-parameters",
						   "zero-page-detection", "multifd");
	if (m->o.features_off & off_bit[QM_F_ZERO_PAGE])
		decide(ft, QM_F_ZERO_PAGE, 0, "turned off (--no-feature)");
	else if (!ft->has[QM_F_ZERO_PAGE][SRC] || !ft->has[QM_F_ZERO_PAGE][DST])
		decide(ft, QM_F_ZERO_PAGE, 0, "%s zero-page-detection=multifd",
		       lacking(ft->has[QM_F_ZERO_PAGE]));
	else if (m->o.multifd_channels <= 0)
		decide(ft, QM_F_ZERO_PAGE, 0, "only with multifd (--multifd N)");
	else {
		decide(ft, QM_F_ZERO_PAGE, 1, "zero pages found by the %d multifd threads",
		       m->o.multifd_channels);
		snprintf(ft->value[QM_F_ZERO_PAGE], sizeof(ft->value[0]), "multifd");
	}

	/* multifd-compression: asked for only. */
	for (int i = 0; i < 2; i++)
		ft->has[QM_F_COMPRESS][i] =
			has_param(&m->side[i], "multifd-compression") &&
			(!c || qmig_schema_has_enum_value(i ? ds : ss, "migrate-set-parameters",
							  "multifd-compression", c));
	if (!c) {
		decide(ft, QM_F_COMPRESS, 0, "not asked for (--compress METHOD)");
	} else if (m->o.multifd_channels <= 0) {
		return qm_fail(m, -EINVAL, "--compress %s needs multifd (--multifd N): QEMU "
					   "compresses in the multifd channels; nothing was changed", c);
	} else if (!ft->has[QM_F_COMPRESS][SRC] || !ft->has[QM_F_COMPRESS][DST]) {
		int i = ft->has[QM_F_COMPRESS][SRC] ? DST : SRC;

		return qm_fail(m, -EOPNOTSUPP,
			       "--compress %s: the %s QEMU does not have multifd compression "
			       "'%s' (%s); nothing was changed",
			       c, m->side[i].name, c,
			       has_param(&m->side[i], "multifd-compression")
				       ? "not among its multifd-compression methods: not built in"
				       : "no multifd-compression parameter");
	} else {
		decide(ft, QM_F_COMPRESS, 1, "asked for; both QEMUs have it");
		snprintf(ft->value[QM_F_COMPRESS], sizeof(ft->value[0]), "%s", c);
	}

	/* switchover-ack */
	ft->has[QM_F_SWITCHOVER_ACK][SRC] = has_cap(s, "switchover-ack") && has_cap(s, "return-path");
	ft->has[QM_F_SWITCHOVER_ACK][DST] = has_cap(d, "switchover-ack") && has_cap(d, "return-path");
	if (has_key(want, "switchover-ack")) {
		decide(ft, QM_F_SWITCHOVER_ACK, 1, "asked for (--cap switchover-ack)");
	} else if (m->o.features_off & off_bit[QM_F_SWITCHOVER_ACK]) {
		decide(ft, QM_F_SWITCHOVER_ACK, 0, "turned off (--no-feature)");
	} else if (!ft->has[QM_F_SWITCHOVER_ACK][SRC] || !ft->has[QM_F_SWITCHOVER_ACK][DST]) {
		decide(ft, QM_F_SWITCHOVER_ACK, 0, "%s the switchover-ack capability",
		       lacking(ft->has[QM_F_SWITCHOVER_ACK]));
	} else if (!m->side[DST].qmp || !dst_needs_ack(m, dev, sizeof(dev))) {
		decide(ft, QM_F_SWITCHOVER_ACK, 0,
		       "no device on the destination needs it (only VFIO devices do)");
	} else {
		decide(ft, QM_F_SWITCHOVER_ACK, 1, "the destination's device %s acknowledges "
						   "when it is ready to switch over", dev);
	}
	if (ft->used[QM_F_SWITCHOVER_ACK]) {
		json_object_object_add(want, "switchover-ack", json_object_new_boolean(1));
		if (!has_key(want, "return-path")) {
			if (!has_cap(s, "return-path") || !has_cap(d, "return-path"))
				return qm_fail(m, -EOPNOTSUPP, "switchover-ack needs the return-path "
							       "capability, which the %s QEMU lacks; "
							       "nothing was changed",
					       has_cap(s, "return-path") ? "destination" : "source");
			json_object_object_add(want, "return-path", json_object_new_boolean(1));
		}
	}

	/* channels */
	for (int i = 0; i < 2; i++)
		ft->has[QM_F_CHANNELS][i] =
			qmig_schema_has_arg(i ? ds : ss, i ? "migrate-incoming" : "migrate",
					    "channels");
	if (m->o.features_off & off_bit[QM_F_CHANNELS])
		decide(ft, QM_F_CHANNELS, 0, "turned off (--no-feature): the uri form");
	else if (!ft->has[QM_F_CHANNELS][SRC] || !ft->has[QM_F_CHANNELS][DST])
		decide(ft, QM_F_CHANNELS, 0, "%s the channels argument: the uri form",
		       lacking(ft->has[QM_F_CHANNELS]));
	else
		decide(ft, QM_F_CHANNELS, 1, "both QEMUs take the address as a channel list");

	/* avail-switchover-bandwidth: the source's alone. */
	ft->has[QM_F_AVAIL_BW][SRC] = has_param(s, "avail-switchover-bandwidth");
	ft->has[QM_F_AVAIL_BW][DST] = has_param(d, "avail-switchover-bandwidth");
	if (m->o.features_off & off_bit[QM_F_AVAIL_BW])
		decide(ft, QM_F_AVAIL_BW, 0, "turned off (--no-feature)");
	else if (!ft->has[QM_F_AVAIL_BW][SRC])
		decide(ft, QM_F_AVAIL_BW, 0, "the source QEMU lacks the parameter");
	else if (m->offline || m->o.pause_after_ms > 0 || m->o.postcopy)
		decide(ft, QM_F_AVAIL_BW, 0, "%s",
		       m->o.postcopy ? "postcopy switches over by its own rule"
				     : "the guest is paused to finish: no switchover decision");
	else
		decide(ft, QM_F_AVAIL_BW, 1, "set during precopy to the highest bandwidth the "
					     "monitor measures (source only; restored afterwards)");
	return 0;
}

void qm_features_params(struct qmig_migration *m, int side, struct json_object *set)
{
	struct qm_features *ft = m->feat;

	if (!ft || !ft->decided)
		return;
	/* Zero pages are found by the sender; the receiver needs no setting. */
	if (ft->used[QM_F_ZERO_PAGE] && side == SRC)
		json_object_object_add(set, "zero-page-detection",
				       json_object_new_string(ft->value[QM_F_ZERO_PAGE]));
	/* Both ends of a compressed stream must agree on the method. */
	if (ft->used[QM_F_COMPRESS])
		json_object_object_add(set, "multifd-compression",
				       json_object_new_string(ft->value[QM_F_COMPRESS]));
}

struct json_object *qm_features_addr_args(struct qmig_migration *m, const char *host,
					  unsigned port, const char *uri)
{
	struct json_object *a = json_object_new_object(), *ch, *addr, *list;
	char p[16];

	if (!m->feat || !m->feat->used[QM_F_CHANNELS] || (!host && strncmp(uri, "unix:", 5))) {
		json_object_object_add(a, "uri", json_object_new_string(uri));
		return a;
	}
	addr = json_object_new_object();
	json_object_object_add(addr, "transport", json_object_new_string("socket"));
	if (host) {
		snprintf(p, sizeof(p), "%u", port);
		json_object_object_add(addr, "type", json_object_new_string("inet"));
		json_object_object_add(addr, "host", json_object_new_string(host));
		json_object_object_add(addr, "port", json_object_new_string(p));
	} else {
		json_object_object_add(addr, "type", json_object_new_string("unix"));
		json_object_object_add(addr, "path", json_object_new_string(uri + 5));
	}
	ch = json_object_new_object();
	json_object_object_add(ch, "channel-type", json_object_new_string("main"));
	json_object_object_add(ch, "addr", addr);
	list = json_object_new_array();
	json_object_array_add(list, ch);
	json_object_object_add(a, "channels", list);
	return a;
}

void qm_features_emit(struct qmig_migration *m)
{
	struct qm_features *ft = m->feat;

	if (!ft || !ft->decided)
		return;
	for (int f = 0; f < QM_F_COUNT; f++) {
		struct json_object *rec = json_object_new_object(), *a = json_object_new_object();

		json_object_object_add(a, "name", json_object_new_string(names[f]));
		json_object_object_add(a, "used", json_object_new_boolean(ft->used[f]));
		json_object_object_add(a, "source", json_object_new_boolean(ft->has[f][SRC]));
		json_object_object_add(a, "destination", json_object_new_boolean(ft->has[f][DST]));
		if (ft->value[f][0])
			json_object_object_add(a, "value", json_object_new_string(ft->value[f]));
		json_object_object_add(rec, "step", json_object_new_int(0));
		json_object_object_add(rec, "side", json_object_new_string("qmigrate"));
		json_object_object_add(rec, "command", json_object_new_string("feature"));
		json_object_object_add(rec, "arguments", a);
		json_object_object_add(rec, "why", json_object_new_string(ft->why[f]));
		qm_emit(m, "plan", rec, NULL);
	}
}

/* Rises by a tenth before it is set again: QEMU's decision changes little
 * for less, and each change is a QMP round trip and a journal write. */
int qm_features_sample(struct qmig_migration *m)
{
	struct qm_features *ft = m->feat;
	struct side *src = &m->side[SRC];
	struct json_object *a, *rec;
	uint64_t bw = m->last.bandwidth;
	int r;

	if (!ft || !ft->used[QM_F_AVAIL_BW] || m->phase != QMIG_PHASE_PRECOPY ||
	    strcmp(m->last.status, "active") || m->res.paused_to_finish || !bw)
		return 0;
	if (m->bandwidth_limit && bw > m->bandwidth_limit)
		bw = m->bandwidth_limit;
	if (bw > ft->avail_bw_peak)
		ft->avail_bw_peak = bw;
	if (ft->avail_bw_set && ft->avail_bw_peak < ft->avail_bw_set + ft->avail_bw_set / 10)
		return 0;
	bw = ft->avail_bw_peak;
	a = json_object_new_object();
	json_object_object_add(a, "avail-switchover-bandwidth", json_object_new_int64((int64_t)bw));
	qm_note_param(src, "avail-switchover-bandwidth"); /* restored with the plan's */
	r = qm_journal(m, src->name, "migrate-set-parameters", a);
	if (r == 0)
		r = qmig_cmd_migrate_set_parameters(src->qmp, a);
	json_object_put(a);
	if (r < 0 && m->journal_failed)
		return qm_fail(m, r, "journal %s: %s: nothing more is changed without it",
			       m->jpath, strerror(-r));
	if (r < 0) {
		/* Only an estimate: QEMU keeps its own. */
		qm_log(m, QMIG_LOG_WARN, "source: avail-switchover-bandwidth: %s",
		       qmig_qmp_conn_error(src->qmp));
		ft->used[QM_F_AVAIL_BW] = 0;
		return 0;
	}
	ft->avail_bw_set = bw;
	ft->avail_bw_updates++;
	rec = json_object_new_object();
	json_object_object_add(rec, "name", json_object_new_string(names[QM_F_AVAIL_BW]));
	json_object_object_add(rec, "value", json_object_new_int64((int64_t)bw));
	json_object_object_add(rec, "pass", json_object_new_int64((int64_t)m->last.pass));
	json_object_object_add(rec, "why", json_object_new_string(
		"the highest bandwidth the monitor has measured, for QEMU's switchover decision"));
	qm_emit(m, "feature", rec, NULL);
	return 0;
}
