/* qmigrate tls init / issue / check: certificates for migration over
 * TLS, in the directory layout of QEMU's tls-creds-x509 object. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "qmig_transport.h"

#define MAX_HOSTS 32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: qmigrate tls init --ca CADIR [--ca-days N] [--rsa] [--force]\n"
		"       qmigrate tls issue --ca CADIR --host NAME [--host NAME...] --out DIR\n"
		"                          [--days N] [--rsa] [--force]\n"
		"                          [--valid-from SECS] [--valid-for SECS]\n"
		"       qmigrate tls init DIR --host NAME [--host NAME...] [--ca CADIR]\n"
		"                         [--reuse-ca] [issue's options]\n"
		"       qmigrate tls check DIR [--host NAME] [--role server|client|both]\n\n"
		"init --ca makes a CA in CADIR (0700): ca-cert.pem and ca-key.pem. Its key\n"
		"signs what every host trusts: it stays there, never on a migration host.\n"
		"issue makes one host's credentials in DIR, the layout QEMU's\n"
		"tls-creds-x509 object reads: ca-cert.pem (the CA certificate only),\n"
		"server-cert.pem and server-key.pem (this host as a destination),\n"
		"client-cert.pem and client-key.pem (this host as a source); keys 0600,\n"
		"each host its own. Give each host only its own DIR. Each --host (a host\n"
		"name or an IP address) goes into the certificates' subjectAltName: name\n"
		"every address the source will connect to; the first is the common name,\n"
		"which the destination's authz rule allows (see migrate --tls-authz).\n"
		"init DIR --host NAME does both for one host that plays both sides\n"
		"(development, tests), with the CA in --ca CADIR (default DIR.ca);\n"
		"--reuse-ca keeps that CA. Keys are ECDSA P-256 (--rsa: RSA 3072); host\n"
		"certificates last --days (365), the CA --ca-days (3650);\n"
		"--valid-from/--valid-for set the host certificates' period in seconds\n"
		"from now instead (negative: in the past, e.g. to test expiry). --force\n"
		"replaces existing files.\n\n"
		"check validates DIR before a migration: the CA, the chain, expiry, that\n"
		"each key matches its certificate, key usage, and with --host that the\n"
		"server certificate names the address the source will use. It refuses a\n"
		"DIR holding the CA's private key, or a private key file open to group or\n"
		"others, naming the file. --role says which side this host plays (server:\n"
		"destination, client: source; default both). Exit status 0 when valid, 1\n"
		"with the problem when not.\n");
}

static enum qmig_tls_role parse_role(const char *s)
{
	if (!strcmp(s, "server") || !strcmp(s, "destination"))
		return QMIG_TLS_SERVER;
	if (!strcmp(s, "client") || !strcmp(s, "source"))
		return QMIG_TLS_CLIENT;
	if (!strcmp(s, "both"))
		return QMIG_TLS_BOTH;
	die(EXIT_USAGE, "tls: --role must be server, client or both, not '%s'", s);
}

static void print_hosts(const char *const *hosts, size_t n)
{
	for (size_t i = 0; i < n; i++)
		printf(" %s", hosts[i]);
	printf("\n");
}

static int init_fail(const char *what, int r, const char *msg)
{
	if (r == -EEXIST)
		die(EXIT_USAGE, "tls %s: %s; --force replaces the files%s", what, msg,
		    strcmp(what, "issue") ? ", --reuse-ca keeps the CA" : "");
	die(r == -EINVAL ? EXIT_USAGE : EXIT_FAIL, "tls %s: %s", what, msg);
}

static int tls_init(const char *dir, const char *ca_dir, const char *const *hosts, size_t n,
		    struct qmig_tls_init_opts *o)
{
	char msg[512] = "", def[4096];
	int r;

	if (!dir) {
		/* The CA alone. */
		if (n || o->reuse_ca)
			die(EXIT_USAGE, "tls init --ca CADIR makes only the CA; certificates for "
			    "a host come from 'qmigrate tls issue --ca CADIR --host NAME --out DIR'");
		r = qmig_tls_ca_init(ca_dir, o, msg, sizeof(msg));
		if (r < 0)
			init_fail("init", r, msg);
		printf("%s: CA (ca-cert.pem, ca-key.pem); keep this directory private\n", ca_dir);
		return EXIT_OK;
	}
	if (n == 0)
		die(EXIT_USAGE, "tls init: at least one --host is needed");
	o->ca_dir = ca_dir;
	r = qmig_tls_init(dir, hosts, n, o, msg, sizeof(msg));
	if (r < 0)
		init_fail("init", r, msg);
	if (!ca_dir) {
		qmig_tls_default_ca_dir(def, sizeof(def), dir);
		ca_dir = def;
	}
	printf("%s: CA%s in %s; server and %sclient certificates for", dir,
	       o->reuse_ca ? " (kept)" : "", ca_dir, o->no_client ? "no " : "");
	print_hosts(hosts, n);
	return EXIT_OK;
}

static int tls_issue(const char *dir, const char *ca_dir, const char *const *hosts, size_t n,
		     const struct qmig_tls_init_opts *o)
{
	char msg[512] = "";
	int r;

	if (!ca_dir)
		die(EXIT_USAGE, "tls issue: --ca CADIR is needed (made by 'qmigrate tls init "
		    "--ca CADIR')");
	if (!dir)
		die(EXIT_USAGE, "tls issue: --out DIR is needed");
	if (n == 0)
		die(EXIT_USAGE, "tls issue: at least one --host is needed");
	r = qmig_tls_issue(ca_dir, dir, hosts, n, o, msg, sizeof(msg));
	if (r < 0)
		init_fail("issue", r, msg);
	printf("%s: server and %sclient certificates from the CA in %s for", dir,
	       o->no_client ? "no " : "", ca_dir);
	print_hosts(hosts, n);
	return EXIT_OK;
}

static int tls_check(const char *dir, const char *host, enum qmig_tls_role role)
{
	char msg[512] = "";
	int r;

	r = qmig_tls_validate(dir, host, role, msg, sizeof(msg));
	if (r < 0) {
		warnx("tls check: %s", msg);
		return EXIT_FAIL;
	}
	printf("%s: valid for the %s%s%s\n", dir,
	       role == QMIG_TLS_SERVER ? "destination" :
	       role == QMIG_TLS_CLIENT ? "source" : "source and destination",
	       host ? " connecting to " : "", host ? host : "");
	return EXIT_OK;
}

int cmd_tls(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"host", required_argument, NULL, 'H'},
		{"days", required_argument, NULL, 'd'},
		{"ca-days", required_argument, NULL, 'D'},
		{"rsa", no_argument, NULL, 'r'},
		{"reuse-ca", no_argument, NULL, 'R'},
		{"force", no_argument, NULL, 'f'},
		{"role", required_argument, NULL, 'o'},
		{"valid-from", required_argument, NULL, 'F'},
		{"valid-for", required_argument, NULL, 'V'},
		{"ca", required_argument, NULL, 'C'},
		{"out", required_argument, NULL, 'O'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;
	enum qmig_tls_role role = QMIG_TLS_BOTH;
	const char *hosts[MAX_HOSTS], *verb, *dir = NULL, *ca_dir = NULL, *out = NULL;
	size_t n = 0;
	int c;

	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? EXIT_USAGE : EXIT_OK;
	}
	verb = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'H':
			if (n == MAX_HOSTS)
				die(EXIT_USAGE, "tls: at most %d --host", MAX_HOSTS);
			hosts[n++] = optarg;
			break;
		case 'd':
			o.host_days = (int)parse_long("--days", optarg, 1, 36500);
			break;
		case 'D':
			o.ca_days = (int)parse_long("--ca-days", optarg, 1, 36500);
			break;
		case 'F':
			o.valid_from_s = parse_long("--valid-from", optarg, -315360000, 315360000);
			break;
		case 'V':
			o.valid_secs = parse_long("--valid-for", optarg, 1, 315360000);
			break;
		case 'r':
			o.key_type = QMIG_TLS_KEY_RSA3072;
			break;
		case 'R':
			o.reuse_ca = 1;
			break;
		case 'f':
			o.overwrite = 1;
			break;
		case 'o':
			role = parse_role(optarg);
			break;
		case 'C':
			ca_dir = optarg;
			break;
		case 'O':
			out = optarg;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc - 1 || (optind == argc - 1 && out))
		die(EXIT_USAGE, "tls %s: one directory is needed (see 'qmigrate tls --help')",
		    verb);
	dir = optind == argc - 1 ? argv[optind] : out;
	if (!strcmp(verb, "init")) {
		if (!dir && !ca_dir)
			die(EXIT_USAGE, "tls init: a directory or --ca CADIR is needed (see "
			    "'qmigrate tls --help')");
		return tls_init(dir, ca_dir, hosts, n, &o);
	}
	if (!strcmp(verb, "issue"))
		return tls_issue(dir, ca_dir, hosts, n, &o);
	if (!dir)
		die(EXIT_USAGE, "tls %s: one directory is needed (see 'qmigrate tls --help')",
		    verb);
	if (!strcmp(verb, "check")) {
		if (n > 1)
			die(EXIT_USAGE, "tls check: one --host, the address the source uses");
		return tls_check(dir, n ? hosts[0] : NULL, role);
	}
	die(EXIT_USAGE, "tls: unknown command '%s' (init, issue or check)", verb);
}
