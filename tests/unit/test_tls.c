/* Unit tests of transport/tls_*.c: certificate creation and validation.
 * Each broken directory must be refused with its own specific message. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qmig_transport.h"
#include "unit.h"

static char base[64];
static const char *const hosts[] = {"dst.example", "10.250.7.2", "::1"};

static int suite_init(void)
{
	snprintf(base, sizeof(base), "/tmp/qmig-test-tls-XXXXXX");
	return mkdtemp(base) ? 0 : -1;
}

static int suite_cleanup(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *dir, const char *file)
{
	static char buf[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s/%s", base, dir, file);
	return buf[i];
}

static int make(const char *dir, const struct qmig_tls_init_opts *o)
{
	char msg[256] = "";
	int r = qmig_tls_init(path(dir, ""), hosts, 3, o, msg, sizeof(msg));

	if (r < 0)
		fprintf(stderr, "qmig_tls_init %s: %s\n", dir, msg);
	return r;
}

static void copy(const char *from_dir, const char *from, const char *to_dir, const char *to)
{
	char buf[8192];
	FILE *in = fopen(path(from_dir, from), "r"), *out = fopen(path(to_dir, to), "w");
	size_t n;

	CU_ASSERT_FATAL(in && out);
	while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
		CU_ASSERT(fwrite(buf, 1, n, out) == n);
	fclose(in);
	fclose(out);
}

/* validate, expecting the error want and a message containing needle. */
static void expect(const char *dir, const char *host, enum qmig_tls_role role, int want,
		   const char *needle)
{
	char msg[512] = "";
	int r = qmig_tls_validate(path(dir, ""), host, role, msg, sizeof(msg));

	if (r != want || (needle && !strstr(msg, needle)))
		fprintf(stderr, "\n  %s: got %d '%s', wanted %d '%s'\n", dir, r, msg, want,
			needle ? needle : "");
	CU_ASSERT_EQUAL(r, want);
	if (needle)
		CU_ASSERT_PTR_NOT_NULL(strstr(msg, needle));
}

static int mode_of(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

static void test_init_valid(void)
{
	CU_ASSERT_EQUAL_FATAL(make("good", NULL), 0);
	CU_ASSERT_EQUAL(mode_of(path("good", "")), 0700);
	/* The CA's key is in a directory of its own, not in the one QEMU reads. */
	CU_ASSERT_EQUAL(mode_of(path("good.ca", "")), 0700);
	CU_ASSERT_EQUAL(mode_of(path("good.ca", "ca-key.pem")), 0600);
	CU_ASSERT_EQUAL(access(path("good", "ca-key.pem"), F_OK), -1);
	CU_ASSERT_EQUAL(mode_of(path("good", "server-key.pem")), 0600);
	CU_ASSERT_EQUAL(mode_of(path("good", "client-key.pem")), 0600);
	CU_ASSERT_EQUAL(mode_of(path("good", "ca-cert.pem")), 0644);
	CU_ASSERT_EQUAL(mode_of(path("good", "server-cert.pem")), 0644);
	CU_ASSERT_EQUAL(mode_of(path("good", "client-cert.pem")), 0644);
	expect("good", "dst.example", QMIG_TLS_BOTH, 0, NULL);
	expect("good", "DST.example", QMIG_TLS_SERVER, 0, NULL); /* names are case-blind */
	expect("good", "10.250.7.2", QMIG_TLS_SERVER, 0, NULL);
	expect("good", "::1", QMIG_TLS_SERVER, 0, NULL);
	expect("good", NULL, QMIG_TLS_BOTH, 0, NULL);
	expect("good", NULL, QMIG_TLS_CLIENT, 0, NULL);
}

static void test_init_refuses_overwrite(void)
{
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;
	char msg[256] = "", before[256], after[256];
	FILE *f;

	CU_ASSERT_EQUAL_FATAL(make("again", NULL), 0);
	CU_ASSERT_EQUAL(qmig_tls_init(path("again", ""), hosts, 1, NULL, msg, sizeof(msg)),
			-EEXIST);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "already exists"));
	/* reuse_ca: the same CA, new host certificates that still verify. */
	f = fopen(path("again", "ca-cert.pem"), "r");
	CU_ASSERT_FATAL(f && fread(before, 1, sizeof(before), f) > 0);
	fclose(f);
	o.reuse_ca = 1;
	o.overwrite = 1;
	CU_ASSERT_EQUAL(make("again", &o), 0);
	f = fopen(path("again", "ca-cert.pem"), "r");
	CU_ASSERT_FATAL(f && fread(after, 1, sizeof(after), f) > 0);
	fclose(f);
	CU_ASSERT_EQUAL(memcmp(before, after, sizeof(before)), 0);
	expect("again", "dst.example", QMIG_TLS_BOTH, 0, NULL);
	/* No temporary files are left behind. */
	CU_ASSERT_EQUAL(system("ls -A1 /tmp/qmig-test-tls-*/again | grep -q '^\\.'"), 256);
}

static void test_wrong_ca(void)
{
	CU_ASSERT_EQUAL_FATAL(make("ca1", NULL), 0);
	CU_ASSERT_EQUAL_FATAL(make("ca2", NULL), 0);
	copy("ca2", "ca-cert.pem", "ca1", "ca-cert.pem");
	expect("ca1", "dst.example", QMIG_TLS_SERVER, -EKEYREJECTED,
	       "server-cert.pem was not issued by the CA in ca-cert.pem");
	expect("ca1", NULL, QMIG_TLS_CLIENT, -EKEYREJECTED,
	       "client-cert.pem was not issued by the CA in ca-cert.pem");
	/* Same CA name: the message says it is another CA of that name. */
	{
		struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;

		o.ca_name = "Same Name CA";
		CU_ASSERT_EQUAL_FATAL(make("ca3", &o), 0);
		CU_ASSERT_EQUAL_FATAL(make("ca4", &o), 0);
		copy("ca4", "ca-cert.pem", "ca3", "ca-cert.pem");
		expect("ca3", NULL, QMIG_TLS_SERVER, -EKEYREJECTED, "another CA of the same name");
	}
}

static void test_wrong_host(void)
{
	expect("good", "other.example", QMIG_TLS_SERVER, -EADDRNOTAVAIL,
	       "server-cert.pem does not name 'other.example'");
	expect("good", "10.250.7.3", QMIG_TLS_BOTH, -EADDRNOTAVAIL,
	       "(it names DNS:dst.example, IP:10.250.7.2, IP:::1)");
	/* A name is not an address, and a suffix is not a match. */
	expect("good", "sub.dst.example", QMIG_TLS_SERVER, -EADDRNOTAVAIL, "does not name");
	/* Only the server certificate is checked for the name. */
	expect("good", "other.example", QMIG_TLS_CLIENT, 0, NULL);
}

static void test_expired(void)
{
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;

	o.valid_from_s = -2 * 86400;
	o.valid_secs = 86400;
	CU_ASSERT_EQUAL_FATAL(make("expired", &o), 0);
	expect("expired", "dst.example", QMIG_TLS_SERVER, -EKEYEXPIRED,
	       "server-cert.pem expired on ");
	expect("expired", NULL, QMIG_TLS_CLIENT, -EKEYEXPIRED, "client-cert.pem expired on ");
	o.valid_from_s = 86400;
	CU_ASSERT_EQUAL_FATAL(make("future", &o), 0);
	expect("future", "dst.example", QMIG_TLS_BOTH, -EKEYEXPIRED,
	       "server-cert.pem is not valid yet");
	/* One-day lifetimes are valid now. */
	o = (struct qmig_tls_init_opts)QMIG_TLS_INIT_OPTS_INIT;
	o.host_days = 1;
	o.ca_days = 1;
	CU_ASSERT_EQUAL_FATAL(make("shortca", &o), 0);
	expect("shortca", NULL, QMIG_TLS_BOTH, 0, NULL);
}

static void test_key_mismatch(void)
{
	CU_ASSERT_EQUAL_FATAL(make("mismatch", NULL), 0);
	copy("mismatch", "client-key.pem", "mismatch", "server-key.pem");
	expect("mismatch", "dst.example", QMIG_TLS_SERVER, -EKEYREJECTED,
	       "server-key.pem does not match server-cert.pem");
	copy("ca1", "client-key.pem", "mismatch", "client-key.pem");
	expect("mismatch", NULL, QMIG_TLS_CLIENT, -EKEYREJECTED,
	       "client-key.pem does not match client-cert.pem");
}

static void test_missing_client(void)
{
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;

	o.no_client = 1;
	CU_ASSERT_EQUAL_FATAL(make("noclient", &o), 0);
	CU_ASSERT_EQUAL(access(path("noclient", "client-cert.pem"), F_OK), -1);
	expect("noclient", "dst.example", QMIG_TLS_SERVER, 0, NULL);
	expect("noclient", NULL, QMIG_TLS_CLIENT, -ENOENT,
	       "client-cert.pem: No such file or directory: the destination verifies its peer");
	expect("noclient", "dst.example", QMIG_TLS_BOTH, -ENOENT, "verify-peer=on");
}

static void test_wrong_usage(void)
{
	CU_ASSERT_EQUAL_FATAL(make("usage", NULL), 0);
	copy("usage", "client-cert.pem", "usage", "server-cert.pem");
	copy("usage", "client-key.pem", "usage", "server-key.pem");
	expect("usage", "dst.example", QMIG_TLS_SERVER, -EKEYREJECTED,
	       "server-cert.pem is not for TLS servers (extendedKeyUsage lacks serverAuth)");
	/* A host certificate in the CA's place. */
	CU_ASSERT_EQUAL_FATAL(make("notca", NULL), 0);
	copy("notca", "server-cert.pem", "notca", "ca-cert.pem");
	expect("notca", NULL, QMIG_TLS_BOTH, -EKEYREJECTED, "ca-cert.pem is not a CA certificate");
	/* The CA in the server's place: its key must never be there. */
	CU_ASSERT_EQUAL_FATAL(make("caserver", NULL), 0);
	copy("caserver.ca", "ca-cert.pem", "caserver", "server-cert.pem");
	copy("caserver.ca", "ca-key.pem", "caserver", "server-key.pem");
	chmod(path("caserver", "server-key.pem"), 0600);
	expect("caserver", NULL, QMIG_TLS_SERVER, -EPERM,
	       "/server-key.pem is the CA's private key");
}

/* The CA's key under any name, or a key others can read, is refused. */
static void test_keys_in_dir(void)
{
	CU_ASSERT_EQUAL_FATAL(make("leak", NULL), 0);
	copy("leak.ca", "ca-key.pem", "leak", "backup.pem");
	chmod(path("leak", "backup.pem"), 0600);
	expect("leak", NULL, QMIG_TLS_CLIENT, -EPERM,
	       "/backup.pem is the CA's private key (it matches ca-cert.pem)");
	CU_ASSERT_EQUAL(unlink(path("leak", "backup.pem")), 0);
	expect("leak", NULL, QMIG_TLS_BOTH, 0, NULL);
	CU_ASSERT_EQUAL(chmod(path("leak", "client-key.pem"), 0640), 0);
	expect("leak", NULL, QMIG_TLS_BOTH, -EACCES,
	       "/client-key.pem is a private key open to group or others (mode 0640)");
	CU_ASSERT_EQUAL(chmod(path("leak", "client-key.pem"), 0600), 0);
	/* Certificates may be public. */
	CU_ASSERT_EQUAL(chmod(path("leak", "server-cert.pem"), 0644), 0);
	expect("leak", NULL, QMIG_TLS_BOTH, 0, NULL);
}

/* One CA, a directory per host: each host has keys of its own, the two
 * trust each other, the subject is what authz allows, and the CA keeps
 * its directory to itself. */
static void test_ca_and_issue(void)
{
	const char *src[] = {"src.example"}, *dst[] = {"dst.example", "10.250.7.2"};
	char msg[512] = "", subj[256] = "", a[4096], b[4096];
	FILE *f;
	size_t na, nb;

	CU_ASSERT_EQUAL_FATAL(qmig_tls_ca_init(path("pki", ""), NULL, msg, sizeof(msg)), 0);
	CU_ASSERT_EQUAL(mode_of(path("pki", "")), 0700);
	CU_ASSERT_EQUAL(mode_of(path("pki", "ca-key.pem")), 0600);
	CU_ASSERT_EQUAL(qmig_tls_issue(path("pki", ""), path("h-src", ""), src, 1, NULL, msg,
				       sizeof(msg)), 0);
	CU_ASSERT_EQUAL(qmig_tls_issue(path("pki", ""), path("h-dst", ""), dst, 2, NULL, msg,
				       sizeof(msg)), 0);
	CU_ASSERT_EQUAL(access(path("h-src", "ca-key.pem"), F_OK), -1);
	expect("h-dst", "10.250.7.2", QMIG_TLS_SERVER, 0, NULL);
	expect("h-src", NULL, QMIG_TLS_CLIENT, 0, NULL);
	CU_ASSERT_EQUAL(qmig_tls_validate_pair(path("h-src", ""), path("h-dst", ""), msg,
					       sizeof(msg)), 0);
	/* Separate keys per host. */
	f = fopen(path("h-src", "server-key.pem"), "r");
	CU_ASSERT_FATAL(f != NULL);
	na = fread(a, 1, sizeof(a), f);
	fclose(f);
	f = fopen(path("h-dst", "server-key.pem"), "r");
	CU_ASSERT_FATAL(f != NULL);
	nb = fread(b, 1, sizeof(b), f);
	fclose(f);
	CU_ASSERT(na > 0 && nb > 0 && (na != nb || memcmp(a, b, na)));
	CU_ASSERT_EQUAL(qmig_tls_client_subject(path("h-src", ""), subj, sizeof(subj), msg,
						sizeof(msg)), 1);
	CU_ASSERT_STRING_EQUAL(subj, "O=qmigrate,CN=src.example");
	/* Never into the CA's own directory; an existing CA is kept. */
	CU_ASSERT_EQUAL(qmig_tls_issue(path("pki", ""), path("pki", ""), src, 1, NULL, msg,
				       sizeof(msg)), -EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "holds the CA"));
	CU_ASSERT_EQUAL(qmig_tls_ca_init(path("pki", ""), NULL, msg, sizeof(msg)), -EEXIST);
	/* A CA directory others can enter is refused. */
	CU_ASSERT_EQUAL(mkdir(path("pki-open", ""), 0755), 0);
	CU_ASSERT_EQUAL(chmod(path("pki-open", ""), 0755), 0);
	CU_ASSERT_EQUAL(qmig_tls_ca_init(path("pki-open", ""), NULL, msg, sizeof(msg)), -EACCES);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "chmod 700"));
	/* No CA there: a clear message. */
	CU_ASSERT_EQUAL(qmig_tls_issue(path("nope", ""), path("h-x", ""), src, 1, NULL, msg,
				       sizeof(msg)), -ENOENT);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "qmigrate tls init --ca"));
}

static void test_bad_files(void)
{
	FILE *f;

	expect("nowhere", NULL, QMIG_TLS_BOTH, -ENOENT, "ca-cert.pem: No such file");
	CU_ASSERT_EQUAL_FATAL(make("garbage", NULL), 0);
	f = fopen(path("garbage", "server-key.pem"), "w");
	CU_ASSERT_FATAL(f != NULL);
	fputs("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n", f);
	fclose(f);
	expect("garbage", NULL, QMIG_TLS_SERVER, -EBADMSG,
	       "server-key.pem is not an unencrypted PEM private key");
	copy("garbage", "server-key.pem", "garbage", "ca-cert.pem");
	expect("garbage", NULL, QMIG_TLS_SERVER, -EBADMSG, "ca-cert.pem is not a PEM certificate");
}

static void test_bad_init_args(void)
{
	const char *bad[] = {"ok.example", "bad name"};
	const char *comma[] = {"a,DNS:evil"};
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;
	char msg[256] = "";

	CU_ASSERT_EQUAL(qmig_tls_init(path("badargs", ""), bad, 2, NULL, msg, sizeof(msg)),
			-EINVAL);
	CU_ASSERT_PTR_NOT_NULL(strstr(msg, "'bad name' is neither a host name nor an IP"));
	CU_ASSERT_EQUAL(qmig_tls_init(path("badargs", ""), comma, 1, NULL, msg, sizeof(msg)),
			-EINVAL);
	CU_ASSERT_EQUAL(qmig_tls_init(path("badargs", ""), hosts, 0, NULL, msg, sizeof(msg)),
			-EINVAL);
	o.version = 7;
	CU_ASSERT_EQUAL(qmig_tls_init(path("badargs", ""), hosts, 1, &o, msg, sizeof(msg)),
			-EINVAL);
	/* Nothing was written by the failed calls. */
	CU_ASSERT_EQUAL(access(path("badargs", "ca-cert.pem"), F_OK), -1);
	CU_ASSERT_EQUAL(qmig_tls_validate(NULL, NULL, QMIG_TLS_BOTH, msg, sizeof(msg)), -EINVAL);
}

static void test_rsa(void)
{
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;

	o.key_type = QMIG_TLS_KEY_RSA3072;
	CU_ASSERT_EQUAL_FATAL(make("rsa", &o), 0);
	expect("rsa", "10.250.7.2", QMIG_TLS_BOTH, 0, NULL);
}

UNIT_SUITE(tls, suite_init, suite_cleanup,
	   {"init makes a valid directory", test_init_valid},
	   {"init refuses to overwrite, reuses CA", test_init_refuses_overwrite},
	   {"validate: wrong CA", test_wrong_ca},
	   {"validate: wrong host name", test_wrong_host},
	   {"validate: expired / not yet valid", test_expired},
	   {"validate: key mismatch", test_key_mismatch},
	   {"validate: missing client cert", test_missing_client},
	   {"validate: wrong key usage", test_wrong_usage},
	   {"validate: unreadable files", test_bad_files},
	   {"init: bad arguments", test_bad_init_args},
	   {"init: RSA keys", test_rsa},
	   {"validate: CA key or open key in the directory", test_keys_in_dir},
	   {"CA directory, one directory per host", test_ca_and_issue})
