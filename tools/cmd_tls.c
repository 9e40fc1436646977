/* qmigrate tls init / qmigrate tls check: certificates for migration over
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
		"usage: qmigrate tls init DIR --host NAME [--host NAME...] [--days N]\n"
		"                         [--ca-days N] [--rsa] [--reuse-ca] [--force]\n"
		"                         [--valid-from SECS] [--valid-for SECS]\n"
		"       qmigrate tls check DIR [--host NAME] [--role server|client|both]\n\n"
		"init creates a CA and server and client certificates in DIR, the layout\n"
		"QEMU's tls-creds-x509 object reads (ca-cert.pem, server-cert.pem,\n"
		"server-key.pem, client-cert.pem, client-key.pem; keys mode 0600). Each\n"
		"--host (a host name or an IP address) is put in the certificates'\n"
		"subjectAltName: name every address the source will connect to. Keys are\n"
		"ECDSA P-256 (--rsa: RSA 3072); host certificates last --days (365), the CA\n"
		"--ca-days (3650); --valid-from/--valid-for set the host certificates'\n"
		"period in seconds from now instead (negative: in the past, e.g. to test\n"
		"expiry). --reuse-ca keeps DIR's CA and makes new host\n"
		"certificates; --force replaces existing files.\n\n"
		"check validates DIR before a migration: the CA, the chain, expiry, that\n"
		"each key matches its certificate, key usage, and with --host that the\n"
		"server certificate names the address the source will use. --role says\n"
		"which side this host plays (server: destination, client: source; default\n"
		"both). Exit status 0 when valid, 1 with the problem when not.\n");
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

static int tls_init(const char *dir, const char *const *hosts, size_t n,
		    const struct qmig_tls_init_opts *o)
{
	char msg[512] = "";
	int r;

	if (n == 0)
		die(EXIT_USAGE, "tls init: at least one --host is needed");
	r = qmig_tls_init(dir, hosts, n, o, msg, sizeof(msg));
	if (r == -EEXIST)
		die(EXIT_USAGE, "tls init: %s; --force replaces the files, --reuse-ca keeps the CA",
		    msg);
	if (r < 0)
		die(r == -EINVAL ? EXIT_USAGE : EXIT_FAIL, "tls init: %s", msg);
	printf("%s: CA%s, server and %sclient certificates for", dir,
	       o->reuse_ca ? " (kept)" : "", o->no_client ? "no " : "");
	for (size_t i = 0; i < n; i++)
		printf(" %s", hosts[i]);
	printf("\n");
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
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	struct qmig_tls_init_opts o = QMIG_TLS_INIT_OPTS_INIT;
	enum qmig_tls_role role = QMIG_TLS_BOTH;
	const char *hosts[MAX_HOSTS], *verb, *dir;
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
		case 'h':
			usage(stdout);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc - 1)
		die(EXIT_USAGE, "tls %s: one directory is needed (see 'qmigrate tls --help')",
		    verb);
	dir = argv[optind];
	if (!strcmp(verb, "init"))
		return tls_init(dir, hosts, n, &o);
	if (!strcmp(verb, "check")) {
		if (n > 1)
			die(EXIT_USAGE, "tls check: one --host, the address the source uses");
		return tls_check(dir, n ? hosts[0] : NULL, role);
	}
	die(EXIT_USAGE, "tls: unknown command '%s' (init or check)", verb);
}
