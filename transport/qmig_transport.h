/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libqmigrate — transport: migration ports, TCP sockets, TLS certificates.
 *
 * Conventions as in the rest of the library: 0 (or a non-negative value
 * such as an fd) on success, a negative errno on failure. Calls that have no
 * handle yet take an optional "char *msg, size_t msg_len" that receives a
 * sentence saying what went wrong (left untouched on success). No threads,
 * no globals, no printing. Destructors accept NULL.
 */
#ifndef QMIG_TRANSPORT_H
#define QMIG_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- migration ports ------------------------------------------------- */

#define QMIG_PORT_LO_DEFAULT 49152
#define QMIG_PORT_HI_DEFAULT 49215

#define QMIG_PORT_OPTS_VERSION 1

struct qmig_port_opts {
	unsigned int version;
	unsigned lo, hi;        /* inclusive range; 0,0: 49152-49215 */
	const char *bind_addr;  /* address QEMU will listen on; NULL: "0.0.0.0" */
	/* Where the per-port lock files live. NULL: /run/qmigrate/ports when
	 * it can be created (root), else $XDG_RUNTIME_DIR/qmigrate-ports,
	 * else /tmp/qmigrate-ports-<uid> (0700, must be ours). Every qmigrate
	 * process on a host must use the same directory to see the others. */
	const char *lock_dir;
	/* Check bindability inside this network namespace (a name under
	 * /run/netns, or a path such as /proc/PID/ns/net); NULL: our own. */
	const char *netns;
};

#define QMIG_PORT_OPTS_INIT {QMIG_PORT_OPTS_VERSION, 0, 0, NULL, NULL, NULL}

struct qmig_port;

/*
 * Reserve a port: one that no other qmigrate process holds (an exclusive
 * flock on LOCK_DIR/<port>.lock, kept for the life of the handle and
 * dropped by the kernel if the process dies) and that can be bound on
 * bind_addr right now (a test socket with SO_REUSEADDR, as QEMU uses, is
 * bound and closed again: QEMU binds the port afterwards). The search
 * starts at a random port of the range. opts may be NULL.
 *
 * Between this call and QEMU's bind an outgoing connection could still take
 * the port as its ephemeral port; hosts that migrate often should add the
 * range to net.ipv4.ip_local_reserved_ports.
 *
 * Errors: -EADDRINUSE when every port is taken, with the message
 * "no free port in LO-HI (N in use or locked)"; -EINVAL bad options;
 * -EADDRNOTAVAIL bind_addr is not an address of this host (namespace);
 * -ENOENT no such namespace; others from the lock directory.
 */
int qmig_port_alloc(struct qmig_port **out, const struct qmig_port_opts *opts, char *msg,
		    size_t msg_len);
unsigned qmig_port_number(const struct qmig_port *port);
/* The lock file held, e.g. "/run/qmigrate/ports/49160.lock". */
const char *qmig_port_lock_path(const struct qmig_port *port);
/* Release the lock (and remove its file). NULL is fine. */
void qmig_port_free(struct qmig_port *port);

/* ---- addresses and TCP sockets -------------------------------------- */

/* Longest host part qmig_addr_parse() returns, with its NUL. */
#define QMIG_HOST_MAX 256

/*
 * Split "host:port", "[v6addr]:port" or "v4addr" / "[v6addr]" / "name"
 * (then *port = default_port; 0 means a port is required). The host is
 * copied without brackets. -EINVAL on a malformed string or a port
 * outside 1-65535, -ENAMETOOLONG when host does not fit.
 */
int qmig_addr_parse(const char *s, unsigned default_port, char *host, size_t host_len,
		    unsigned *port);
/* "host:port", or "[host]:port" when host is an IPv6 literal. Returns the
 * length (like snprintf), or -ENOSPC when it did not fit. */
int qmig_addr_format(char *buf, size_t len, const char *host, unsigned port);

/*
 * Listening TCP socket on host:port (host NULL or "": every IPv4 address;
 * "::" every address). SO_REUSEADDR, non-blocking, close-on-exec.
 * Returns the fd or a negative errno.
 */
int qmig_tcp_listen(const char *host, unsigned port, int backlog, char *msg, size_t msg_len);
/* The port a socket is bound to (after listening on port 0), or -errno. */
int qmig_tcp_local_port(int fd);
/*
 * Accept one connection, waiting at most timeout_ms (<0: forever, 0: do
 * not wait). The new socket is non-blocking and close-on-exec.
 * Returns the fd, -ETIMEDOUT, or another negative errno.
 */
int qmig_tcp_accept(int listen_fd, int timeout_ms);
/*
 * Connect to host:port (names are resolved; each address is tried in
 * turn) within timeout_ms in total (<0: no limit). TCP_NODELAY is set.
 * Returns a non-blocking, close-on-exec fd, or -ETIMEDOUT,
 * -ECONNREFUSED, -EHOSTUNREACH, -ENOENT (unknown name), ...
 */
int qmig_tcp_connect(const char *host, unsigned port, int timeout_ms, char *msg,
		     size_t msg_len);

/* ---- TLS certificates (QEMU tls-creds-x509 layout) ------------------- */

/*
 * A host's credentials directory, what QEMU's tls-creds-x509 object reads
 * and the only thing a host gets:
 *   ca-cert.pem                        the CA both sides trust
 *   server-cert.pem, server-key.pem    this host as a destination (endpoint=server)
 *   client-cert.pem, client-key.pem    this host as a source (endpoint=client)
 * The CA's own directory (ca-cert.pem, ca-key.pem; 0700) is kept apart:
 * its key never goes to QEMU or to another host.
 */

enum qmig_tls_key_type {
	QMIG_TLS_KEY_EC_P256, /* ECDSA on P-256 (default; accepted by QEMU 7.2) */
	QMIG_TLS_KEY_RSA3072
};

#define QMIG_TLS_INIT_OPTS_VERSION 2

struct qmig_tls_init_opts {
	unsigned int version;
	int ca_days;             /* CA lifetime; 0: 3650 */
	int host_days;           /* server/client lifetime; 0: 365 */
	/* Host certificates start being valid at now + valid_from_s (negative:
	 * in the past; a small margin for clocks that differ between hosts).
	 * With valid_secs > 0 they end valid_secs later (instead of host_days),
	 * so tests can make expired or not-yet-valid certificates. */
	int64_t valid_from_s;
	int64_t valid_secs;
	enum qmig_tls_key_type key_type;
	int overwrite;           /* replace existing files (else -EEXIST) */
	int reuse_ca;            /* qmig_tls_init: keep the existing CA */
	int no_client;           /* make no client certificate */
	const char *ca_name;     /* CA common name; NULL: "qmigrate CA XXXXXXXX" */
	/* Version 2. qmig_tls_init: the CA's directory; NULL: DIR.ca. */
	const char *ca_dir;
};

#define QMIG_TLS_INIT_OPTS_INIT {QMIG_TLS_INIT_OPTS_VERSION, 0, 0, -3600, 0, \
				 QMIG_TLS_KEY_EC_P256, 0, 0, 0, NULL, NULL}

/*
 * Make a CA in ca_dir (created 0700; refused when it is open to group or
 * others): ca-cert.pem and ca-key.pem (0600). Uses ca_days, key_type,
 * overwrite and ca_name of opts (may be NULL).
 */
int qmig_tls_ca_init(const char *ca_dir, const struct qmig_tls_init_opts *opts, char *msg,
		     size_t msg_len);

/*
 * Issue one host's credentials into dir (0700 if created) from the CA in
 * ca_dir: a copy of ca-cert.pem, and a new key and certificate for each
 * endpoint. hosts[] (n >= 1) are host names and IP addresses, all put in
 * the subjectAltName of both certificates; the first is the common name
 * (so the client certificate's subject is "O=qmigrate,CN=hosts[0]", what
 * the other side's authz rule allows). Private keys are written mode
 * 0600, files are written to a temporary name and renamed, so a failure
 * leaves no partial file behind. dir may not be ca_dir.
 */
int qmig_tls_issue(const char *ca_dir, const char *dir, const char *const *hosts, size_t n,
		   const struct qmig_tls_init_opts *opts, char *msg, size_t msg_len);

/*
 * For one host that plays both sides (development, tests): a CA in
 * opts->ca_dir (default DIR.ca; kept when reuse_ca) and this host's
 * credentials in dir, as qmig_tls_ca_init() + qmig_tls_issue().
 */
int qmig_tls_init(const char *dir, const char *const *hosts, size_t n,
		  const struct qmig_tls_init_opts *opts, char *msg, size_t msg_len);
/* The CA directory qmig_tls_init() uses for dir when none is given: "DIR.ca". */
void qmig_tls_default_ca_dir(char *buf, size_t len, const char *dir);

enum qmig_tls_role {
	QMIG_TLS_SERVER, /* the destination: server-cert.pem, names peer_host */
	QMIG_TLS_CLIENT, /* the source: client-cert.pem */
	QMIG_TLS_BOTH    /* one directory used on both sides */
};

/*
 * Check dir before QEMU loads it, for the role this host plays:
 * no file in dir is the CA's private key (a key whose public key is
 * ca-cert.pem's), and no private key file is open to group or others;
 * ca-cert.pem is a CA; the certificate chains to it; it is within its
 * validity period (now); its private key matches; key usage and extended
 * key usage fit the role (QEMU rejects a critical keyUsage without
 * digitalSignature and keyEncipherment); for the server, its
 * subjectAltName (or, with no SAN, its common name) names peer_host, the
 * name or IP address the source will use (NULL: not checked).
 *
 * Returns 0, or: -EPERM the CA's key is in dir; -EACCES a key file is
 * readable by others; -ENOENT a file is missing; -EBADMSG a file is not PEM of
 * the right kind; -EKEYREJECTED untrusted chain, key mismatch or wrong
 * usage; -EKEYEXPIRED expired or not yet valid; -EADDRNOTAVAIL the
 * certificate does not name peer_host. msg names the file and the problem.
 */
int qmig_tls_validate(const char *dir, const char *peer_host, enum qmig_tls_role role,
		      char *msg, size_t msg_len);

/*
 * The two sides trust each other: the destination's server-cert.pem chains
 * to the source's ca-cert.pem and the source's client-cert.pem to the
 * destination's. -EKEYREJECTED with msg naming the certificate otherwise.
 */
int qmig_tls_validate_pair(const char *src_dir, const char *dst_dir, char *msg,
			   size_t msg_len);

/*
 * The subject of dir/client-cert.pem as GnuTLS prints it (e.g.
 * "O=qmigrate,CN=src.example"): what a destination's authz-list allows.
 * Returns 1 and fills buf when the certificate carries a common name, 0
 * when it has none (nothing to authorize by), or a negative errno.
 */
int qmig_tls_client_subject(const char *dir, char *buf, size_t len, char *msg, size_t msg_len);

#ifdef __cplusplus
}
#endif
#endif
