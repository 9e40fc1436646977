/* TLS migration with QEMU's own tls-creds-x509 objects. The certificate
 * directories are checked with OpenSSL first, so a wrong CA, host name,
 * key or date is a clear refusal before any QMP command touches a guest,
 * not QEMU's "failed" halfway through. The objects are removed again
 * after the migration or its rollback.
 *
 * verify-peer only says the source's certificate comes from the CA; with
 * one CA for many hosts, any host could then migrate into this one. So
 * when the source's certificate carries a name, the destination also gets
 * an authz-list that allows exactly that certificate's subject (tls-authz),
 * unless the caller names its own authz object or "none". */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent/agent.h"
#include "launch/launch.h"
#include "link.h"

static const char *param_str(struct json_object *params, const char *name)
{
	struct json_object *v;

	if (!params || !json_object_object_get_ex(params, name, &v))
		return NULL;
	return json_object_get_string(v);
}

/* Decide on our own authz-list: m->authz_id set when there is to be one. */
static int plan_authz(struct qmig_migration *m)
{
	const char *want = m->o.tls_authz;
	struct qmig_schema *schema = qm_side_schema(m, &m->side[DST]);
	char msg[512] = "";
	int r;

	m->authz_id[0] = 0;
	if (want && strcmp(want, "auto"))
		return 0; /* "none", or the caller's own object */
	r = qmig_tls_client_subject(m->o.tls_dir, m->authz_dn, sizeof(m->authz_dn), msg,
				    sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "TLS: source certificate: %s", msg);
	if (r == 0) {
		qm_log(m, QMIG_LOG_WARN, "TLS: the source's certificate has no common name: the "
		       "destination accepts any certificate from the CA (no authz rule)");
		return 0;
	}
	if (!param_str(m->side[DST].orig_params, "tls-authz") ||
	    !qmig_schema_has_enum_value(schema, "object-add", "qom-type", "authz-list")) {
		qm_log(m, QMIG_LOG_WARN, "TLS: the destination QEMU has no authz-list or "
		       "tls-authz: it accepts any certificate from the CA");
		return 0;
	}
	snprintf(m->authz_id, sizeof(m->authz_id), "qmigrate-authz-%s", m->job);
	return 0;
}

/* Only the source's certificate subject, exactly. */
static struct json_object *authz_object(struct qmig_migration *m)
{
	struct json_object *obj = json_object_new_object(), *rules = json_object_new_array(),
			   *rule = json_object_new_object();

	json_object_object_add(rule, "match", json_object_new_string(m->authz_dn));
	json_object_object_add(rule, "policy", json_object_new_string("allow"));
	json_object_object_add(rule, "format", json_object_new_string("exact"));
	json_object_array_add(rules, rule);
	json_object_object_add(obj, "qom-type", json_object_new_string("authz-list"));
	json_object_object_add(obj, "id", json_object_new_string(m->authz_id));
	json_object_object_add(obj, "policy", json_object_new_string("deny"));
	json_object_object_add(obj, "rules", rules);
	return obj;
}

int qm_tls_check(struct qmig_migration *m)
{
	const char *dst_creds = param_str(m->side[DST].orig_params, "tls-creds");
	char msg[512] = "";
	int r;

	if (!m->o.tls_dir) {
		/* Otherwise the destination drops the stream with a TLS error. */
		if (dst_creds && *dst_creds)
			return qm_fail(m, -EPROTO,
				       "the destination expects TLS (tls-creds '%s') but the source "
				       "would send plain TCP: pass --tls DIR",
				       dst_creds);
		return 0;
	}
	for (int i = 0; i < 2; i++)
		if (!param_str(m->side[i].orig_params, "tls-creds"))
			return qm_fail(m, -EOPNOTSUPP, "the %s QEMU has no TLS migration support",
				       m->side[i].name);
	r = qmig_tls_validate(m->o.tls_dir, NULL, QMIG_TLS_CLIENT, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "TLS: source certificates: %s", msg);
	if (qm_agent_remote_dst(m->o.dst_qmp)) {
		/* tls_dst_dir is a path on the agent's host: the agent checked
		 * it (host name, both chains) when it prepared the job. */
		qm_log(m, QMIG_LOG_INFO, "TLS: the destination's certificates (%s) are on the "
		       "agent's host; the agent checked them", m->o.tls_dst_dir);
		return plan_authz(m);
	}
	r = qmig_tls_validate(m->o.tls_dst_dir, m->o.tls_hostname, QMIG_TLS_SERVER, msg,
			      sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "TLS: destination certificates: %s", msg);
	r = qmig_tls_validate_pair(m->o.tls_dir, m->o.tls_dst_dir, msg, sizeof(msg));
	if (r < 0)
		return qm_fail(m, r, "TLS: %s", msg);
	return plan_authz(m);
}

/* Copy one PEM file (at most 1 MiB) into dir, owned by uid/gid. */
static int copy_file(const char *from_dir, const char *to_dir, const char *name, uid_t uid,
		     gid_t gid)
{
	char from[4096], to[4096], *buf = NULL;
	struct stat st;
	ssize_t n = -1;
	int in, out = -1, r = 0;

	snprintf(from, sizeof(from), "%s/%s", from_dir, name);
	snprintf(to, sizeof(to), "%s/%s", to_dir, name);
	in = open(from, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (in < 0)
		return -errno;
	if (fstat(in, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > (1 << 20) ||
	    !(buf = malloc((size_t)st.st_size + 1)))
		r = -EINVAL;
	if (!r)
		n = pread(in, buf, (size_t)st.st_size, 0);
	if (!r && n != st.st_size)
		r = -EIO;
	if (!r)
		out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (!r && out < 0)
		r = -errno;
	if (!r && (fchown(out, uid, gid) < 0 || write(out, buf, (size_t)n) != n))
		r = -errno ? -errno : -EIO;
	if (out >= 0)
		close(out);
	close(in);
	free(buf);
	return r;
}

/* The directory this side's QEMU loads. QEMU may run as an unprivileged
 * user (runas) that cannot read the caller's 0600 keys: it then gets a
 * copy of only its role's files, owned by its uid (from the QMP socket's
 * peer credentials), in its runtime directory or, for a QEMU we did not
 * launch, in /tmp; removed when the migration ends (qmigrate recover
 * removes a dead job's). */
static const char *creds_dir(struct qmig_migration *m, struct side *s, const char *dir)
{
	int i = s == &m->side[DST] ? DST : SRC;
	const char *const names[] = {"ca-cert.pem", i == DST ? "server-cert.pem" : "client-cert.pem",
				     i == DST ? "server-key.pem" : "client-key.pem"};
	char *out = m->tls_copy[i];
	uid_t uid;
	gid_t gid;
	int r = 0;

	if (m->o.dry_run || geteuid() != 0 || !s->qmp || qm_qemu_cred(s->qmp, &uid, &gid) < 0 ||
	    uid == 0 || (i == DST && qm_agent_remote_dst(m->o.dst_qmp)))
		return dir; /* remote: the agent gives its QEMU its own copy */
	if (*out)
		return out;
	snprintf(out, sizeof(m->tls_copy[i]), "%s/qmigrate-tls-%s-%s.XXXXXX",
		 s->vm ? qmig_vm_runtime_dir(s->vm) : "/tmp", m->job, i == DST ? "dst" : "src");
	if (!mkdtemp(out) || chmod(out, 0711) < 0) {
		qm_log(m, QMIG_LOG_WARN, "%s: no directory for QEMU's copy of the credentials: %s",
		       s->name, strerror(errno));
		*out = 0;
		return dir;
	}
	for (int k = 0; k < 3 && r == 0; k++)
		r = copy_file(dir, out, names[k], uid, gid);
	if (r < 0) {
		qm_log(m, QMIG_LOG_WARN, "%s: copying %s for QEMU's uid %u: %s", s->name, dir,
		       (unsigned)uid, strerror(-r));
		qm_launch_rm_tree(out);
		*out = 0;
		return dir;
	}
	qm_log(m, QMIG_LOG_INFO, "%s: QEMU runs as uid %u: it gets its own copy of %s's "
	       "%s files in %s", s->name, (unsigned)uid, dir, i == DST ? "server" : "client", out);
	return out;
}

void qm_tls_remove_copies(struct qmig_migration *m)
{
	for (int i = 0; i < 2; i++) {
		if (m->tls_copy[i][0])
			qm_launch_rm_tree(m->tls_copy[i]);
		m->tls_copy[i][0] = 0;
	}
}

/* The object-add step for one side, and the parameters that use it. */
int qm_tls_plan(struct qmig_migration *m, struct side *s, struct json_object *params)
{
	int dst = s == &m->side[DST];
	struct json_object *obj;
	int r;

	if (!m->o.tls_dir)
		return 0;
	if (!params) {
		obj = json_object_new_object();
		json_object_object_add(obj, "qom-type", json_object_new_string("tls-creds-x509"));
		json_object_object_add(obj, "id", json_object_new_string(QM_TLS_ID));
		json_object_object_add(obj, "dir", json_object_new_string(
				       creds_dir(m, s, dst ? m->o.tls_dst_dir : m->o.tls_dir)));
		json_object_object_add(obj, "endpoint",
				       json_object_new_string(dst ? "server" : "client"));
		json_object_object_add(obj, "verify-peer", json_object_new_boolean(1));
		r = qm_plan_add(m, dst ? DST : SRC, "object-add", obj,
				"TLS credentials for the stream (removed afterwards)");
		if (r == 0 && dst && m->authz_id[0])
			r = qm_plan_add(m, DST, "object-add", authz_object(m),
					"accept only the source's certificate (removed afterwards)");
		return r;
	}
	json_object_object_add(params, "tls-creds", json_object_new_string(QM_TLS_ID));
	if (!dst)
		json_object_object_add(params, "tls-hostname",
				       json_object_new_string(m->o.tls_hostname));
	if (dst && m->authz_id[0])
		json_object_object_add(params, "tls-authz", json_object_new_string(m->authz_id));
	else if (dst && m->o.tls_authz && strcmp(m->o.tls_authz, "none") &&
		 strcmp(m->o.tls_authz, "auto"))
		json_object_object_add(params, "tls-authz", json_object_new_string(m->o.tls_authz));
	return 0;
}

void qm_tls_cleanup(struct qmig_migration *m, struct side *s)
{
	int r;

	if (!s->tls_object || !s->qmp)
		return;
	r = qmig_cmd_object_del(s->qmp, QM_TLS_ID);
	if (r < 0)
		qm_log(m, QMIG_LOG_WARN, "%s: could not remove the TLS object: %s", s->name,
		       qmig_qmp_conn_error(s->qmp));
	if (s == &m->side[DST] && m->authz_id[0] && qmig_cmd_object_del(s->qmp, m->authz_id) < 0) {
		qm_log(m, QMIG_LOG_WARN, "%s: could not remove the authz object: %s", s->name,
		       qmig_qmp_conn_error(s->qmp));
		r = -EIO;
	}
	if (r == 0)
		s->tls_object = 0;
	if (s->tls_object == 0 && m->tls_copy[s == &m->side[DST] ? DST : SRC][0]) {
		qm_launch_rm_tree(m->tls_copy[s == &m->side[DST] ? DST : SRC]);
		m->tls_copy[s == &m->side[DST] ? DST : SRC][0] = 0;
	}
}
