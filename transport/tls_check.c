/* Pre-flight validation of a tls-creds-x509 directory with OpenSSL.
 *
 * QEMU checks much of this itself when the object is created, and the TLS
 * handshake checks the rest, but both report it late and obscurely (a
 * migration that "failed" with a gnutls error on the other host). Here
 * every problem gets its own sentence naming the file, before any QMP
 * command touches a guest. The order of the checks matters: each one
 * assumes the earlier ones passed, so the message names the first real
 * cause (an expired certificate is reported as expired, not as untrusted). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "qmig_transport.h"
#include "transport_int.h"

struct check {
	const char *dir;
	char *msg;
	size_t len;
};

static int load_cert(struct check *c, const char *name, X509 **out, const char *why)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	f = fopen(path, "re");
	if (!f) {
		int e = errno;

		qm_tp_msg(c->msg, c->len, "%s: %s%s", path, strerror(e), why ? why : "");
		return -e;
	}
	*out = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (!*out) {
		ERR_clear_error();
		qm_tp_msg(c->msg, c->len, "%s is not a PEM certificate", path);
		return -EBADMSG;
	}
	return 0;
}

static int load_key(struct check *c, const char *name, EVP_PKEY **out)
{
	char path[PATH_MAX];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	f = fopen(path, "re");
	if (!f) {
		int e = errno;

		qm_tp_msg(c->msg, c->len, "%s: %s", path, strerror(e));
		return -e;
	}
	/* No passphrase callback: QEMU cannot use an encrypted key either. */
	*out = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
	fclose(f);
	if (!*out) {
		ERR_clear_error();
		qm_tp_msg(c->msg, c->len, "%s is not an unencrypted PEM private key", path);
		return -EBADMSG;
	}
	return 0;
}

static void fmt_time(const ASN1_TIME *t, char *buf, size_t len)
{
	struct tm tm;

	if (ASN1_TIME_to_tm(t, &tm) != 1 || !strftime(buf, len, "%Y-%m-%d %H:%M:%S UTC", &tm))
		snprintf(buf, len, "(unreadable time)");
}

static int check_time(struct check *c, X509 *cert, const char *name)
{
	char when[40];

	if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
		fmt_time(X509_get0_notBefore(cert), when, sizeof(when));
		qm_tp_msg(c->msg, c->len, "%s/%s is not valid yet: it starts on %s "
			  "(check the clocks of both hosts)", c->dir, name, when);
		return -EKEYEXPIRED;
	}
	if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
		fmt_time(X509_get0_notAfter(cert), when, sizeof(when));
		qm_tp_msg(c->msg, c->len, "%s/%s expired on %s", c->dir, name, when);
		return -EKEYEXPIRED;
	}
	return 0;
}

static void name_of(X509_NAME *n, char *buf, size_t len)
{
	BIO *b = BIO_new(BIO_s_mem());
	int k = 0;

	buf[0] = 0;
	if (b && X509_NAME_print_ex(b, n, 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		k = BIO_read(b, buf, (int)len - 1);
	buf[k > 0 ? k : 0] = 0;
	BIO_free(b);
}

static int check_ca(struct check *c, X509 *ca)
{
	uint32_t ku = X509_get_key_usage(ca);
	int r = check_time(c, ca, "ca-cert.pem");

	if (r < 0)
		return r;
	if (!(X509_get_extension_flags(ca) & EXFLAG_CA)) {
		qm_tp_msg(c->msg, c->len, "%s/ca-cert.pem is not a CA certificate "
			  "(basicConstraints CA:TRUE is missing)", c->dir);
		return -EKEYREJECTED;
	}
	if (ku != UINT32_MAX && !(ku & KU_KEY_CERT_SIGN)) {
		qm_tp_msg(c->msg, c->len, "%s/ca-cert.pem may not sign certificates "
			  "(keyUsage lacks keyCertSign)", c->dir);
		return -EKEYREJECTED;
	}
	return 0;
}

/* Signed by the CA? Times were checked already, so ignore them here. */
static int check_chain(struct check *c, X509 *ca, X509 *cert, const char *name)
{
	X509_STORE *store = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	char issuer[256], subject[256];
	int ok = 0, err = X509_V_ERR_UNSPECIFIED;

	if (store && ctx && X509_STORE_add_cert(store, ca) &&
	    X509_STORE_CTX_init(ctx, store, cert, NULL)) {
		X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_NO_CHECK_TIME);
		ok = X509_verify_cert(ctx) == 1;
		err = X509_STORE_CTX_get_error(ctx);
	}
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	if (ok)
		return 0;
	name_of(X509_get_issuer_name(cert), issuer, sizeof(issuer));
	name_of(X509_get_subject_name(ca), subject, sizeof(subject));
	if (X509_verify(cert, X509_get0_pubkey(ca)) != 1) {
		ERR_clear_error();
		qm_tp_msg(c->msg, c->len, "%s/%s was not issued by the CA in ca-cert.pem "
			  "(issued by \"%s\"%s, the CA is \"%s\"): the other side will not "
			  "trust it", c->dir, name, issuer,
			  strcmp(issuer, subject) ? "" : ", another CA of the same name", subject);
	} else {
		qm_tp_msg(c->msg, c->len, "%s/%s does not verify against ca-cert.pem: %s",
			  c->dir, name, X509_verify_cert_error_string(err));
	}
	return -EKEYREJECTED;
}

/* The rules QEMU applies on load, and what TLS needs for the role. */
static int check_usage(struct check *c, X509 *cert, const char *name, int server)
{
	uint32_t ku = X509_get_key_usage(cert), xku = X509_get_extended_key_usage(cert);
	int loc = X509_get_ext_by_NID(cert, NID_key_usage, -1);
	int critical = loc >= 0 && X509_EXTENSION_get_critical(X509_get_ext(cert, loc));

	if (X509_get_extension_flags(cert) & EXFLAG_CA) {
		qm_tp_msg(c->msg, c->len, "%s/%s is a CA certificate, not a %s certificate",
			  c->dir, name, server ? "server" : "client");
		return -EKEYREJECTED;
	}
	if (ku != UINT32_MAX && !(ku & KU_DIGITAL_SIGNATURE)) {
		qm_tp_msg(c->msg, c->len, "%s/%s: keyUsage does not allow digitalSignature, "
			  "which TLS needs", c->dir, name);
		return -EKEYREJECTED;
	}
	if (ku != UINT32_MAX && critical && !(ku & KU_KEY_ENCIPHERMENT)) {
		qm_tp_msg(c->msg, c->len, "%s/%s: a critical keyUsage without keyEncipherment, "
			  "which QEMU refuses", c->dir, name);
		return -EKEYREJECTED;
	}
	if (xku != UINT32_MAX && !(xku & (server ? XKU_SSL_SERVER : XKU_SSL_CLIENT))) {
		qm_tp_msg(c->msg, c->len, "%s/%s is not for TLS %ss (extendedKeyUsage lacks %s)",
			  c->dir, name, server ? "server" : "client",
			  server ? "serverAuth" : "clientAuth");
		return -EKEYREJECTED;
	}
	return 0;
}

/* "DNS:a, IP:10.0.0.1" — what the certificate does name, for the message. */
static void list_names(X509 *cert, char *buf, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;

	buf[0] = 0;
	for (int i = 0; names && i < sk_GENERAL_NAME_num(names) && used < len; i++) {
		GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
		const char *sep = used ? ", " : "";
		char ip[64] = "";

		if (g->type == GEN_DNS) {
			used += (size_t)snprintf(buf + used, len - used, "%sDNS:%.*s", sep,
						 ASN1_STRING_length(g->d.dNSName),
						 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
		} else if (g->type == GEN_IPADD) {
			const unsigned char *a = ASN1_STRING_get0_data(g->d.iPAddress);
			int n = ASN1_STRING_length(g->d.iPAddress);

			if (!inet_ntop(n == 16 ? AF_INET6 : AF_INET, a, ip, sizeof(ip)) ||
			    (n != 4 && n != 16))
				snprintf(ip, sizeof(ip), "(bad address)");
			used += (size_t)snprintf(buf + used, len - used, "%sIP:%s", sep, ip);
		}
	}
	GENERAL_NAMES_free(names);
	if (!buf[0]) {
		char subject[200];

		name_of(X509_get_subject_name(cert), subject, sizeof(subject));
		snprintf(buf, len, "no subjectAltName; subject \"%s\"", subject);
	}
}

static int check_host(struct check *c, X509 *cert, const char *name, const char *host)
{
	char names[256];
	int ok;

	if (qm_tp_is_ip(host))
		ok = X509_check_ip_asc(cert, host, 0) == 1;
	else
		ok = X509_check_host(cert, host, 0, 0, NULL) == 1;
	if (ok)
		return 0;
	list_names(cert, names, sizeof(names));
	qm_tp_msg(c->msg, c->len, "%s/%s does not name '%s', the address the source "
		  "connects to (it names %s)", c->dir, name, host, names);
	return -EADDRNOTAVAIL;
}

static const char missing_client[] =
	": the destination verifies its peer (verify-peer=on), so the source needs a "
	"client certificate signed by the CA";

static int check_pair(struct check *c, X509 *ca, int server, const char *host)
{
	const char *cname = server ? "server-cert.pem" : "client-cert.pem";
	const char *kname = server ? "server-key.pem" : "client-key.pem";
	X509 *cert = NULL;
	EVP_PKEY *key = NULL;
	int r;

	r = load_cert(c, cname, &cert, server ? NULL : missing_client);
	if (r == 0)
		r = load_key(c, kname, &key);
	if (r == 0)
		r = check_time(c, cert, cname);
	if (r == 0)
		r = check_chain(c, ca, cert, cname);
	if (r == 0 && X509_check_private_key(cert, key) != 1) {
		ERR_clear_error();
		qm_tp_msg(c->msg, c->len, "%s/%s does not match %s (the key belongs to "
			  "another certificate)", c->dir, kname, cname);
		r = -EKEYREJECTED;
	}
	if (r == 0)
		r = check_usage(c, cert, cname, server);
	if (r == 0 && server && host)
		r = check_host(c, cert, cname, host);
	X509_free(cert);
	EVP_PKEY_free(key);
	return r;
}

/* Private keys in the directory: a key file is opened without following
 * a symlink out of it, and at most 1 MiB of it is read. Returns 1 and the
 * key when the file holds an unencrypted PEM private key, 0 otherwise. */
static int read_any_key(int dfd, const char *name, struct stat *st, EVP_PKEY **key)
{
	char *buf;
	BIO *b;
	ssize_t n;
	int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);

	*key = NULL;
	if (fd < 0)
		return 0;
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || st->st_size > (1 << 20) ||
	    !(buf = malloc((size_t)st->st_size + 1))) {
		close(fd);
		return 0;
	}
	n = pread(fd, buf, (size_t)st->st_size, 0);
	close(fd);
	if (n > 0 && memmem(buf, (size_t)n, "PRIVATE KEY-----", 16) &&
	    (b = BIO_new_mem_buf(buf, (int)n))) {
		*key = PEM_read_bio_PrivateKey(b, NULL, NULL, (void *)"");
		BIO_free(b);
	}
	ERR_clear_error();
	free(buf);
	return *key != NULL;
}

/* What the directory must not hold: the CA's private key (whoever has it
 * can mint a certificate for any host), or a key others can read. */
static int check_keys(struct check *c, X509 *ca)
{
	int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), r = 0;
	struct dirent *e;
	DIR *d;

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		int err = errno;

		if (dfd >= 0)
			close(dfd);
		qm_tp_msg(c->msg, c->len, "%s: %s", c->dir, strerror(err));
		return -err;
	}
	while (r == 0 && (e = readdir(d))) {
		struct stat st;
		EVP_PKEY *key;

		if (e->d_name[0] == '.' && (!e->d_name[1] || !strcmp(e->d_name, "..")))
			continue;
		if (!read_any_key(dirfd(d), e->d_name, &st, &key))
			continue;
		if (X509_check_private_key(ca, key) == 1) {
			qm_tp_msg(c->msg, c->len, "%s/%s is the CA's private key (it matches "
				  "ca-cert.pem): whoever reads this directory (QEMU, the other "
				  "host) could sign certificates for any host; keep it in the CA's "
				  "own directory and remove it here", c->dir, e->d_name);
			r = -EPERM;
		} else if (st.st_mode & 077) {
			qm_tp_msg(c->msg, c->len, "%s/%s is a private key open to group or others "
				  "(mode %04o): chmod 600 it", c->dir, e->d_name,
				  (unsigned)(st.st_mode & 07777));
			r = -EACCES;
		}
		ERR_clear_error();
		EVP_PKEY_free(key);
	}
	closedir(d);
	return r;
}

int qmig_tls_validate(const char *dir, const char *peer_host, enum qmig_tls_role role,
		      char *msg, size_t msg_len)
{
	struct check c = {dir, msg, msg_len};
	X509 *ca = NULL;
	int r;

	if (!dir || !*dir || role > QMIG_TLS_BOTH) {
		qm_tp_msg(msg, msg_len, "a certificate directory and a role are needed");
		return -EINVAL;
	}
	if (strlen(dir) > PATH_MAX - 32) {
		qm_tp_msg(msg, msg_len, "directory path too long");
		return -ENAMETOOLONG;
	}
	r = load_cert(&c, "ca-cert.pem", &ca, NULL);
	if (r == 0)
		r = check_ca(&c, ca);
	if (r == 0)
		r = check_keys(&c, ca);
	if (r == 0 && role != QMIG_TLS_CLIENT)
		r = check_pair(&c, ca, 1, peer_host);
	if (r == 0 && role != QMIG_TLS_SERVER)
		r = check_pair(&c, ca, 0, NULL);
	X509_free(ca);
	return r;
}

/* Each side trusts the other's certificate: with a directory per host, the
 * destination's server certificate must chain to the source's CA and the
 * source's client certificate to the destination's CA. */
static int cross(const char *ca_dir, const char *cert_dir, const char *name, char *msg,
		 size_t msg_len)
{
	struct check ca_c = {ca_dir, msg, msg_len}, cert_c = {cert_dir, msg, msg_len};
	X509 *ca = NULL, *cert = NULL;
	int r;

	r = load_cert(&ca_c, "ca-cert.pem", &ca, NULL);
	if (r == 0)
		r = load_cert(&cert_c, name, &cert, NULL);
	if (r == 0 && check_chain(&cert_c, ca, cert, name) < 0) {
		qm_tp_msg(msg, msg_len, "%s/%s was not signed by the CA in %s/ca-cert.pem: the "
			  "other side will not trust it (issue both hosts' directories from one "
			  "CA: 'qmigrate tls issue --ca CADIR')", cert_dir, name, ca_dir);
		r = -EKEYREJECTED;
	}
	X509_free(cert);
	X509_free(ca);
	return r;
}

int qmig_tls_validate_pair(const char *src_dir, const char *dst_dir, char *msg, size_t msg_len)
{
	int r;

	if (!src_dir || !dst_dir) {
		qm_tp_msg(msg, msg_len, "two certificate directories are needed");
		return -EINVAL;
	}
	r = cross(src_dir, dst_dir, "server-cert.pem", msg, msg_len);
	if (r == 0)
		r = cross(dst_dir, src_dir, "client-cert.pem", msg, msg_len);
	return r;
}

int qmig_tls_client_subject(const char *dir, char *buf, size_t len, char *msg, size_t msg_len)
{
	struct check c = {dir, msg, msg_len};
	X509 *cert = NULL;
	X509_NAME *name;
	BIO *b;
	int r, k = 0;

	if (!dir || !buf || len < 2) {
		qm_tp_msg(msg, msg_len, "a certificate directory and a buffer are needed");
		return -EINVAL;
	}
	r = load_cert(&c, "client-cert.pem", &cert, NULL);
	if (r < 0)
		return r;
	name = X509_get_subject_name(cert);
	if (X509_NAME_get_index_by_NID(name, NID_commonName, -1) < 0) {
		X509_free(cert);
		return 0;
	}
	/* RFC 4514 escaping, in the certificate's own order: what GnuTLS's
	 * gnutls_x509_crt_get_dn() gives QEMU's authz check (seen from QEMU
	 * 7.2: "TLS x509 authz check for O=qmigrate,CN=src.example"). */
	b = BIO_new(BIO_s_mem());
	if (b && X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV) >= 0)
		k = BIO_read(b, buf, (int)len - 1);
	BIO_free(b);
	X509_free(cert);
	ERR_clear_error();
	if (k <= 0 || (size_t)k >= len - 1) {
		qm_tp_msg(msg, msg_len, "%s/client-cert.pem: subject unreadable or too long", dir);
		return -EBADMSG;
	}
	buf[k] = 0;
	return 1;
}
