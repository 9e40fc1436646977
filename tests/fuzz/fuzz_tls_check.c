/* libFuzzer: the certificate checker's inputs. The input is the files of
 * a credentials directory separated by lines "@@": ca-cert.pem,
 * server-cert.pem, server-key.pem, client-cert.pem, client-key.pem (a
 * missing one stays missing). They are written to a private directory
 * and checked as `qmigrate tls check` and the migration's pre-flight do. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qmig_transport.h"

static char dir[64];
static const char *const names[] = {"ca-cert.pem", "server-cert.pem", "server-key.pem",
				    "client-cert.pem", "client-key.pem"};

static void cleanup(void)
{
	char path[128];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	snprintf(dir, sizeof(dir), "/tmp/qmig-fuzz-tls.XXXXXX");
	if (!mkdtemp(dir))
		abort();
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	char path[128], msg[512];
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		const char *sep = p < end ? memmem(p, (size_t)(end - p), "\n@@\n", 4) : NULL;
		const char *stop = sep ? sep : end;
		FILE *f;

		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
		if (p >= end)
			continue;
		f = fopen(path, "we");
		if (!f)
			abort();
		fwrite(p, 1, (size_t)(stop - p), f);
		fclose(f);
		p = sep ? sep + 4 : end;
	}
	msg[0] = 0;
	if (qmig_tls_validate(dir, "localhost", QMIG_TLS_BOTH, msg, sizeof(msg)) < 0 && !msg[0])
		abort(); /* a refusal names the file and the problem */
	qmig_tls_validate(dir, "127.0.0.1", QMIG_TLS_SERVER, msg, sizeof(msg));
	qmig_tls_validate(dir, NULL, QMIG_TLS_CLIENT, msg, sizeof(msg));
	qmig_tls_validate_pair(dir, dir, msg, sizeof(msg));
	return 0;
}
