/* Certificates for QEMU's tls-creds-x509 objects, made with OpenSSL.
 *
 * The extensions follow what QEMU (crypto/tlscredsx509.c) checks when it
 * loads a directory: the CA has basicConstraints CA:TRUE and may sign
 * certificates; host certificates are not CAs, their critical keyUsage
 * allows digitalSignature and keyEncipherment (QEMU refuses a critical
 * keyUsage without either, whatever the key type), and their
 * extendedKeyUsage says serverAuth or clientAuth. Everything is built in
 * memory first and written only when all of it succeeded. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "qmig_transport.h"
#include "transport_int.h"

enum { F_CA_CERT, F_CA_KEY, F_SRV_CERT, F_SRV_KEY, F_CLI_CERT, F_CLI_KEY, F_COUNT };

static const char *const file_names[F_COUNT] = {
	"ca-cert.pem", "ca-key.pem", "server-cert.pem", "server-key.pem",
	"client-cert.pem", "client-key.pem",
};

struct tls_set {
	EVP_PKEY *key[3];  /* CA, server, client */
	X509 *cert[3];
};

/* The first queued OpenSSL error as text, for messages; clears the queue. */
const char *qm_tp_ssl_err(char *buf, size_t len)
{
	unsigned long e = ERR_get_error();

	ERR_clear_error();
	if (!e)
		return "unknown OpenSSL error";
	ERR_error_string_n(e, buf, len);
	return buf;
}

int qm_tp_is_ip(const char *s)
{
	unsigned char buf[16];

	return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* A host name we can put in a DNS SAN: letters, digits, '-', '.', and a
 * leading "*." wildcard. Anything else would also corrupt the SAN string. */
static int valid_dns_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 253)
		return 0;
	if (!strncmp(s, "*.", 2))
		s += 2;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '.'))
			return 0;
	return 1;
}

static EVP_PKEY *new_key(enum qmig_tls_key_type type)
{
	if (type == QMIG_TLS_KEY_RSA3072)
		return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)3072);
	return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

static int add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (!ext)
		return 0;
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	return ok;
}

static int set_name(X509 *cert, const char *cn)
{
	X509_NAME *name = X509_get_subject_name(cert);

	return X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
					  (const unsigned char *)"qmigrate", -1, -1, 0) &&
	       X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
					  (const unsigned char *)cn, -1, -1, 0);
}

/* A random positive 127-bit serial, so re-made certificates never repeat one. */
static int set_serial(X509 *cert)
{
	BIGNUM *bn = BN_new();
	int ok = bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) &&
		 BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert));

	BN_free(bn);
	return ok;
}

struct cert_spec {
	const char *cn;
	int64_t from_s, secs;       /* validity, relative to now */
	const char *const *exts;    /* pairs nid-name, value; NULL-terminated */
	const char *san;            /* NULL: none */
};

static X509 *make_cert(const struct cert_spec *s, EVP_PKEY *key, X509 *issuer,
		       EVP_PKEY *issuer_key)
{
	X509 *cert = X509_new();
	int ok;

	ok = cert && X509_set_version(cert, 2) && set_serial(cert) && set_name(cert, s->cn) &&
	     X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert)) &&
	     X509_gmtime_adj(X509_getm_notBefore(cert), (long)s->from_s) &&
	     X509_gmtime_adj(X509_getm_notAfter(cert), (long)(s->from_s + s->secs)) &&
	     X509_set_pubkey(cert, key);
	for (const char *const *e = s->exts; ok && *e; e += 2)
		ok = add_ext(cert, issuer ? issuer : cert, OBJ_sn2nid(e[0]), e[1]);
	if (ok && s->san)
		ok = add_ext(cert, issuer, NID_subject_alt_name, s->san);
	if (ok)
		ok = X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0;
	if (!ok) {
		X509_free(cert);
		return NULL;
	}
	return cert;
}

static const char *const ca_exts[] = {
	"basicConstraints", "critical,CA:TRUE",
	"keyUsage", "critical,keyCertSign,cRLSign",
	"subjectKeyIdentifier", "hash",
	NULL,
};

static const char *const server_exts[] = {
	"basicConstraints", "critical,CA:FALSE",
	"keyUsage", "critical,digitalSignature,keyEncipherment",
	"extendedKeyUsage", "serverAuth",
	"subjectKeyIdentifier", "hash",
	"authorityKeyIdentifier", "keyid",
	NULL,
};

static const char *const client_exts[] = {
	"basicConstraints", "critical,CA:FALSE",
	"keyUsage", "critical,digitalSignature,keyEncipherment",
	"extendedKeyUsage", "clientAuth",
	"subjectKeyIdentifier", "hash",
	"authorityKeyIdentifier", "keyid",
	NULL,
};

/* "DNS:a,IP:10.0.0.1,..." from the host list, after checking each. */
static int build_san(char **out, const char *const *hosts, size_t n)
{
	size_t cap = 1, used = 0;
	char *san;

	/* The names were checked by qmig_tls_init(). */
	for (size_t i = 0; i < n; i++)
		cap += strlen(hosts[i]) + 5;
	san = malloc(cap);
	if (!san)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		used += (size_t)snprintf(san + used, cap - used, "%s%s:%s", i ? "," : "",
					 qm_tp_is_ip(hosts[i]) ? "IP" : "DNS", hosts[i]);
	*out = san;
	return 0;
}

static void set_free(struct tls_set *t)
{
	for (int i = 0; i < 3; i++) {
		EVP_PKEY_free(t->key[i]);
		X509_free(t->cert[i]);
	}
}

static int load_ca(struct tls_set *t, const char *dir, char *msg, size_t len)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/ca-cert.pem", dir);
	f = fopen(path, "re");
	if (f) {
		t->cert[0] = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	snprintf(path, sizeof(path), "%s/ca-key.pem", dir);
	f = fopen(path, "re");
	if (f) {
		t->key[0] = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (!t->cert[0] || !t->key[0]) {
		qm_tp_msg(msg, len, "cannot reuse the CA in %s: ca-cert.pem and ca-key.pem "
			  "must both be readable PEM", dir);
		return -ENOENT;
	}
	if (X509_check_private_key(t->cert[0], t->key[0]) != 1) {
		ERR_clear_error();
		qm_tp_msg(msg, len, "cannot reuse the CA in %s: ca-key.pem does not match "
			  "ca-cert.pem", dir);
		return -EKEYREJECTED;
	}
	return 0;
}

/* Distinct names for distinct CAs, so "issued by another CA" is readable. */
static const char *ca_default_name(char *buf, size_t len)
{
	unsigned char id[4] = {0};

	RAND_bytes(id, sizeof(id));
	snprintf(buf, len, "qmigrate CA %02x%02x%02x%02x", id[0], id[1], id[2], id[3]);
	return buf;
}

static int make_all(struct tls_set *t, const char *dir, const char *const *hosts, size_t n,
		    const struct qmig_tls_init_opts *o, char *msg, size_t len)
{
	char ca_name[32];
	int64_t day = 86400, host_secs = o->valid_secs > 0 ? o->valid_secs :
					 (o->host_days > 0 ? o->host_days : 365) * day;
	const char *ca_cn = o->ca_name ? o->ca_name : ca_default_name(ca_name, sizeof(ca_name));
	struct cert_spec ca = {ca_cn, -3600, (o->ca_days > 0 ? o->ca_days : 3650) * day,
			       ca_exts, NULL};
	struct cert_spec srv = {hosts[0], o->valid_from_s, host_secs, server_exts, NULL};
	struct cert_spec cli = srv;
	char *san = NULL;
	int r;

	cli.exts = client_exts;
	r = build_san(&san, hosts, n);
	if (r < 0)
		return r;
	srv.san = cli.san = san;
	if (o->reuse_ca) {
		r = load_ca(t, dir, msg, len);
		if (r < 0)
			goto out;
	} else {
		t->key[0] = new_key(o->key_type);
		t->cert[0] = t->key[0] ? make_cert(&ca, t->key[0], NULL, NULL) : NULL;
	}
	t->key[1] = new_key(o->key_type);
	if (t->key[1])
		t->cert[1] = make_cert(&srv, t->key[1], t->cert[0], t->key[0]);
	if (!o->no_client) {
		t->key[2] = new_key(o->key_type);
		if (t->key[2])
			t->cert[2] = make_cert(&cli, t->key[2], t->cert[0], t->key[0]);
	}
	r = 0;
	if (!t->cert[0] || !t->cert[1] || (!o->no_client && !t->cert[2])) {
		char ebuf[160];

		qm_tp_msg(msg, len, "creating certificates: %s",
			  qm_tp_ssl_err(ebuf, sizeof(ebuf)));
		r = -EIO;
	}
out:
	free(san);
	return r;
}

/* Write one PEM file under a temporary name; *tmp receives that name. */
static int write_pem(const char *dir, int idx, X509 *cert, EVP_PKEY *key, char *tmp,
		     size_t tmp_len)
{
	FILE *f;
	int fd, ok;

	snprintf(tmp, tmp_len, "%s/.%s.XXXXXX", dir, file_names[idx]);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Keys 0600 from the start; certificates are public. */
	if (fchmod(fd, key ? 0600 : 0644) < 0 || !(f = fdopen(fd, "w"))) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return -e;
	}
	ok = key ? PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) :
		   PEM_write_X509(f, cert);
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

static int write_all(const struct tls_set *t, const char *dir, const struct qmig_tls_init_opts *o,
		     char *msg, size_t len)
{
	char tmp[F_COUNT][PATH_MAX], path[PATH_MAX];
	int first = o->reuse_ca ? F_SRV_CERT : F_CA_CERT;
	int last = o->no_client ? F_SRV_KEY : F_CLI_KEY;
	int i, r = 0;

	for (i = first; i <= last; i++) {
		int k = i / 2;

		r = write_pem(dir, i, i % 2 ? NULL : t->cert[k], i % 2 ? t->key[k] : NULL,
			      tmp[i], sizeof(tmp[i]));
		if (r < 0) {
			qm_tp_msg(msg, len, "writing %s/%s: %s", dir, file_names[i], strerror(-r));
			break;
		}
	}
	if (r < 0) {
		while (--i >= first)
			unlink(tmp[i]);
		return r;
	}
	for (i = first; i <= last; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, file_names[i]);
		if (rename(tmp[i], path) < 0 && !r) {
			r = -errno;
			qm_tp_msg(msg, len, "renaming into %s: %s", path, strerror(errno));
		}
	}
	return r;
}

/* Refuse to overwrite unless asked: these may be a real deployment's keys. */
static int check_existing(const char *dir, const struct qmig_tls_init_opts *o, char *msg,
			  size_t len)
{
	char path[PATH_MAX];
	struct stat st;

	if (o->overwrite)
		return 0;
	for (int i = o->reuse_ca ? F_SRV_CERT : F_CA_CERT; i < F_COUNT; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, file_names[i]);
		if (lstat(path, &st) == 0) {
			qm_tp_msg(msg, len, "%s already exists",
				  path);
			return -EEXIST;
		}
	}
	return 0;
}

int qmig_tls_init(const char *dir, const char *const *hosts, size_t n,
		  const struct qmig_tls_init_opts *opts, char *msg, size_t msg_len)
{
	static const struct qmig_tls_init_opts defaults = QMIG_TLS_INIT_OPTS_INIT;
	struct tls_set t = {{0}, {0}};
	int r;

	if (!opts)
		opts = &defaults;
	if (opts->version != QMIG_TLS_INIT_OPTS_VERSION) {
		qm_tp_msg(msg, msg_len, "qmig_tls_init_opts version %u not supported",
			  opts->version);
		return -EINVAL;
	}
	if (!dir || !*dir || !hosts || n == 0) {
		qm_tp_msg(msg, msg_len, "a directory and at least one host name are needed");
		return -EINVAL;
	}
	if (strlen(dir) > PATH_MAX - 32) {
		qm_tp_msg(msg, msg_len, "directory path too long");
		return -ENAMETOOLONG;
	}
	for (size_t i = 0; i < n; i++) {
		if (!hosts[i] || (!qm_tp_is_ip(hosts[i]) && !valid_dns_name(hosts[i]))) {
			qm_tp_msg(msg, msg_len, "'%s' is neither a host name nor an IP address",
				  hosts[i] ? hosts[i] : "(null)");
			return -EINVAL;
		}
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		qm_tp_msg(msg, msg_len, "cannot create %s: %s", dir, strerror(errno));
		return r;
	}
	r = check_existing(dir, opts, msg, msg_len);
	if (r == 0)
		r = make_all(&t, dir, hosts, n, opts, msg, msg_len);
	if (r == 0)
		r = write_all(&t, dir, opts, msg, msg_len);
	set_free(&t);
	return r;
}
