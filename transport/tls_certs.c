/* Certificates for QEMU's tls-creds-x509 objects, made with OpenSSL.
 *
 * The CA lives in a directory of its own (0700): its key signs what every
 * host trusts, so it never goes into a directory that QEMU reads or that
 * is copied to a host. Each host gets its own key pair and certificates
 * (qmig_tls_issue), so one compromised host or QEMU holds only its own.
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

/* One file to write: a certificate or a private key. */
struct out_file {
	const char *name;
	X509 *cert;
	EVP_PKEY *key;
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

static void free_files(struct out_file *f, int n)
{
	for (int i = 0; i < n; i++) {
		X509_free(f[i].cert);
		EVP_PKEY_free(f[i].key);
		f[i].cert = NULL;
		f[i].key = NULL;
	}
}

static int read_pem(const char *dir, const char *name, X509 **cert, EVP_PKEY **key)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	if (cert)
		*cert = PEM_read_X509(f, NULL, NULL, NULL);
	else
		*key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	ERR_clear_error();
	return (cert ? *cert != NULL : *key != NULL) ? 0 : -EBADMSG;
}

static int load_ca(const char *ca_dir, X509 **cert, EVP_PKEY **key, char *msg, size_t len)
{
	if (read_pem(ca_dir, "ca-cert.pem", cert, NULL) < 0 ||
	    read_pem(ca_dir, "ca-key.pem", NULL, key) < 0) {
		qm_tp_msg(msg, len, "no CA in %s: ca-cert.pem and ca-key.pem must both be "
			  "readable PEM ('qmigrate tls init --ca %s' makes them)", ca_dir, ca_dir);
		return -ENOENT;
	}
	if (X509_check_private_key(*cert, *key) != 1) {
		ERR_clear_error();
		qm_tp_msg(msg, len, "%s/ca-key.pem does not match %s/ca-cert.pem", ca_dir, ca_dir);
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

static int make_ca(const struct qmig_tls_init_opts *o, X509 **cert, EVP_PKEY **key, char *msg,
		   size_t len)
{
	char name[32], ebuf[160];
	struct cert_spec ca = {o->ca_name ? o->ca_name : ca_default_name(name, sizeof(name)),
			       -3600, (o->ca_days > 0 ? o->ca_days : 3650) * (int64_t)86400,
			       ca_exts, NULL};

	*key = new_key(o->key_type);
	*cert = *key ? make_cert(&ca, *key, NULL, NULL) : NULL;
	if (*cert)
		return 0;
	qm_tp_msg(msg, len, "creating the CA: %s", qm_tp_ssl_err(ebuf, sizeof(ebuf)));
	return -EIO;
}

/* The host's own server and client certificates, signed by the CA. The
 * client certificate carries the same names: its subject is what the
 * other side's authz rule allows. */
static int make_host(struct out_file *f, X509 *ca, EVP_PKEY *ca_key, const char *const *hosts,
		     size_t n, const struct qmig_tls_init_opts *o, char *msg, size_t len)
{
	int64_t secs = o->valid_secs > 0 ? o->valid_secs :
		       (o->host_days > 0 ? o->host_days : 365) * (int64_t)86400;
	struct cert_spec srv = {hosts[0], o->valid_from_s, secs, server_exts, NULL};
	struct cert_spec cli = {hosts[0], o->valid_from_s, secs, client_exts, NULL};
	char *san = NULL, ebuf[160];
	int r = build_san(&san, hosts, n);

	if (r < 0)
		return r;
	srv.san = cli.san = san;
	f[0] = (struct out_file){"ca-cert.pem", X509_dup(ca), NULL};
	f[1].name = "server-cert.pem";
	f[2].name = "server-key.pem";
	f[2].key = new_key(o->key_type);
	f[1].cert = f[2].key ? make_cert(&srv, f[2].key, ca, ca_key) : NULL;
	if (!o->no_client) {
		f[3].name = "client-cert.pem";
		f[4].name = "client-key.pem";
		f[4].key = new_key(o->key_type);
		f[3].cert = f[4].key ? make_cert(&cli, f[4].key, ca, ca_key) : NULL;
	}
	free(san);
	if (!f[0].cert || !f[1].cert || (!o->no_client && !f[3].cert)) {
		qm_tp_msg(msg, len, "creating certificates: %s", qm_tp_ssl_err(ebuf, sizeof(ebuf)));
		return -EIO;
	}
	return 0;
}

/* Write one PEM file under a temporary name; *tmp receives that name. */
static int write_pem(const char *dir, const struct out_file *o, char *tmp, size_t tmp_len)
{
	FILE *f;
	int fd, ok;

	snprintf(tmp, tmp_len, "%s/.%s.XXXXXX", dir, o->name);
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* Keys 0600 from the start; certificates are public. */
	if (fchmod(fd, o->key ? 0600 : 0644) < 0 || !(f = fdopen(fd, "w"))) {
		int e = errno;

		close(fd);
		unlink(tmp);
		return -e;
	}
	ok = o->key ? PEM_write_PrivateKey(f, o->key, NULL, NULL, 0, NULL, NULL) :
		      PEM_write_X509(f, o->cert);
	ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
	if (fclose(f) != 0 || !ok) {
		unlink(tmp);
		return -EIO;
	}
	return 0;
}

/* All or nothing: every file is written under a temporary name first. */
static int write_files(const char *dir, const struct out_file *f, int n, char *msg, size_t len)
{
	char tmp[5][PATH_MAX], path[PATH_MAX];
	int i, r = 0;

	for (i = 0; i < n && f[i].name; i++) {
		r = write_pem(dir, &f[i], tmp[i], sizeof(tmp[i]));
		if (r < 0) {
			qm_tp_msg(msg, len, "writing %s/%s: %s", dir, f[i].name, strerror(-r));
			break;
		}
	}
	if (r < 0) {
		while (--i >= 0)
			unlink(tmp[i]);
		return r;
	}
	n = i;
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, f[i].name);
		if (rename(tmp[i], path) < 0 && !r) {
			r = -errno;
			qm_tp_msg(msg, len, "renaming into %s: %s", path, strerror(errno));
		}
	}
	return r;
}

/* Refuse to overwrite unless asked: these may be a real deployment's keys. */
static int check_existing(const char *dir, const char *const *names, int overwrite, char *msg,
			  size_t len)
{
	char path[PATH_MAX];
	struct stat st;

	for (int i = 0; !overwrite && names[i]; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (lstat(path, &st) == 0) {
			qm_tp_msg(msg, len, "%s already exists", path);
			return -EEXIST;
		}
	}
	return 0;
}

/* dir, created 0700 if needed. The CA's directory must also not be open
 * to anyone else: its key signs certificates every host trusts. */
static int make_dir(const char *dir, int private, char *msg, size_t len)
{
	struct stat st;

	if (strlen(dir) > PATH_MAX - 32) {
		qm_tp_msg(msg, len, "directory path too long");
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;

		qm_tp_msg(msg, len, "cannot create %s: %s", dir, strerror(e));
		return -e;
	}
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		qm_tp_msg(msg, len, "%s is not a directory", dir);
		return -ENOTDIR;
	}
	if (private && (st.st_mode & 077)) {
		qm_tp_msg(msg, len, "the CA directory %s is open to group or others (mode %04o): "
			  "chmod 700 it", dir, (unsigned)(st.st_mode & 07777));
		return -EACCES;
	}
	return 0;
}

static int check_opts(const struct qmig_tls_init_opts **o, char *msg, size_t len)
{
	static const struct qmig_tls_init_opts defaults = QMIG_TLS_INIT_OPTS_INIT;

	if (!*o)
		*o = &defaults;
	if ((*o)->version < 1 || (*o)->version > QMIG_TLS_INIT_OPTS_VERSION) {
		qm_tp_msg(msg, len, "qmig_tls_init_opts version %u not supported", (*o)->version);
		return -EINVAL;
	}
	return 0;
}

int qmig_tls_ca_init(const char *ca_dir, const struct qmig_tls_init_opts *opts, char *msg,
		     size_t msg_len)
{
	static const char *const names[] = {"ca-cert.pem", "ca-key.pem", NULL};
	struct out_file f[2] = {{"ca-cert.pem", NULL, NULL}, {"ca-key.pem", NULL, NULL}};
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int r = check_opts(&opts, msg, msg_len);

	if (r < 0)
		return r;
	if (!ca_dir || !*ca_dir) {
		qm_tp_msg(msg, msg_len, "a CA directory is needed");
		return -EINVAL;
	}
	r = make_dir(ca_dir, 1, msg, msg_len);
	if (r == 0)
		r = check_existing(ca_dir, names, opts->overwrite, msg, msg_len);
	if (r == 0)
		r = make_ca(opts, &cert, &key, msg, msg_len);
	if (r == 0) {
		f[0].cert = cert;
		f[1].key = key;
		r = write_files(ca_dir, f, 2, msg, msg_len);
	}
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

static int same_dir(const char *a, const char *b)
{
	struct stat sa, sb;

	return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
	       sa.st_ino == sb.st_ino;
}

static const char *const host_files[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem",
					 "client-cert.pem", "client-key.pem", NULL};

int qmig_tls_issue(const char *ca_dir, const char *dir, const char *const *hosts, size_t n,
		   const struct qmig_tls_init_opts *opts, char *msg, size_t msg_len)
{
	struct out_file f[5] = {{0}};
	X509 *ca = NULL;
	EVP_PKEY *ca_key = NULL;
	int r = check_opts(&opts, msg, msg_len);

	if (r < 0)
		return r;
	if (!ca_dir || !*ca_dir || !dir || !*dir || !hosts || n == 0) {
		qm_tp_msg(msg, msg_len, "a CA directory, a directory and at least one host "
			  "name are needed");
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!hosts[i] || (!qm_tp_is_ip(hosts[i]) && !valid_dns_name(hosts[i]))) {
			qm_tp_msg(msg, msg_len, "'%s' is neither a host name nor an IP address",
				  hosts[i] ? hosts[i] : "(null)");
			return -EINVAL;
		}
	}
	r = load_ca(ca_dir, &ca, &ca_key, msg, msg_len);
	if (r == 0)
		r = make_dir(dir, 0, msg, msg_len);
	if (r == 0 && same_dir(ca_dir, dir)) {
		qm_tp_msg(msg, msg_len, "%s holds the CA: a host's directory is handed to QEMU "
			  "and to the host, so it must be another directory", dir);
		r = -EINVAL;
	}
	if (r == 0)
		r = check_existing(dir, host_files, opts->overwrite, msg, msg_len);
	if (r == 0)
		r = make_host(f, ca, ca_key, hosts, n, opts, msg, msg_len);
	if (r == 0)
		r = write_files(dir, f, opts->no_client ? 3 : 5, msg, msg_len);
	free_files(f, 5);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	return r;
}

void qmig_tls_default_ca_dir(char *buf, size_t len, const char *dir)
{
	size_t n = strlen(dir);

	while (n > 1 && dir[n - 1] == '/')
		n--;
	snprintf(buf, len, "%.*s.ca", (int)n, dir);
}

int qmig_tls_init(const char *dir, const char *const *hosts, size_t n,
		  const struct qmig_tls_init_opts *opts, char *msg, size_t msg_len)
{
	char ca_dir[PATH_MAX];
	int r = check_opts(&opts, msg, msg_len);

	if (r < 0)
		return r;
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
	r = check_existing(dir, host_files, opts->overwrite, msg, msg_len);
	if (r < 0)
		return r;
	if (opts->version >= 2 && opts->ca_dir)
		snprintf(ca_dir, sizeof(ca_dir), "%s", opts->ca_dir);
	else
		qmig_tls_default_ca_dir(ca_dir, sizeof(ca_dir), dir);
	if (!opts->reuse_ca) {
		struct qmig_tls_init_opts ca_o = *opts;

		/* A CA left from an earlier run is only replaced when asked. */
		ca_o.version = 1;
		r = qmig_tls_ca_init(ca_dir, &ca_o, msg, msg_len);
		if (r < 0)
			return r;
	}
	return qmig_tls_issue(ca_dir, dir, hosts, n, opts, msg, msg_len);
}
