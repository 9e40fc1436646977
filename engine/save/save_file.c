/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The save file's header block (layout in qmig_save.h) and the stream's
 * SHA-256. The header is a file's, i.e. anyone's input: read with typed
 * access, every value checked.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <openssl/evp.h>

#include "qmp_reply.h"
#include "save_int.h"

#define MAGIC "QMIGRATE-SAVE 1\n"

int qm_sf_sha256(int fd, uint64_t off, uint64_t len, char hex[65])
{
	enum { CHUNK = 1 << 20 };
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	char *buf = malloc(CHUNK);
	int r = 0;

	if (!ctx || !buf || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		r = -ENOMEM;
		goto out;
	}
	while (len) {
		size_t want = len < CHUNK ? (size_t)len : CHUNK;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			goto out;
		}
		EVP_DigestUpdate(ctx, buf, (size_t)n);
		off += (uint64_t)n;
		len -= (uint64_t)n;
	}
	EVP_DigestFinal_ex(ctx, md, &mdlen);
	for (unsigned i = 0; i < mdlen && i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return r;
}

int qm_sf_write_header(int fd, const struct qmig_save_header *h)
{
	struct json_object *o = json_object_new_object();
	char block[QMIG_SAVE_HEADER_SIZE];
	const char *txt;
	size_t n;
	ssize_t w;

	if (!o)
		return -ENOMEM;
#define S(k, v) json_object_object_add(o, k, json_object_new_string(v))
#define I(k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))
	I("format", 1);
	S("method", h->method);
	I("multifd_channels", h->multifd_channels);
	S("qemu", h->qemu);
	I("qemu_version", h->qemu_version);
	S("machine", h->machine);
	I("ram_bytes", h->ram_bytes);
	I("stream_offset", h->stream_offset);
	I("stream_bytes", h->stream_bytes);
	S("sha256", h->sha256);
	S("guest", h->guest);
	json_object_object_add(o, "was_running", json_object_new_boolean(h->was_running));
	I("saved_at", h->saved_at);
#undef S
#undef I
	txt = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	memset(block, 0, sizeof(block));
	n = strlen(MAGIC) + strlen(txt) + 1;
	if (n >= sizeof(block)) {
		json_object_put(o);
		return -E2BIG;
	}
	snprintf(block, sizeof(block), "%s%s\n", MAGIC, txt);
	json_object_put(o);
	w = pwrite(fd, block, sizeof(block), 0);
	if (w != (ssize_t)sizeof(block))
		return w < 0 ? -errno : -EIO;
	return fsync(fd) < 0 ? -errno : 0;
}

static int bad(char *msg, size_t len, int err, const char *path, const char *what)
{
	snprintf(msg, len, "%s: %s", path, what);
	return err;
}

/* The header is a file's, i.e. anyone's: typed access and every value checked. */
int qm_sf_parse_header(int fd, const char *path, struct qmig_save_header *h, char *msg, size_t len)
{
	char block[QMIG_SAVE_HEADER_SIZE + 1];
	struct json_object *o;
	struct qm_rd rd;
	struct stat st;
	ssize_t n;
	int r = 0;

	memset(h, 0, sizeof(*h));
	n = pread(fd, block, QMIG_SAVE_HEADER_SIZE, 0);
	if (n < 0)
		return bad(msg, len, -errno, path, "cannot read its header");
	block[n] = 0;
	if ((size_t)n < strlen(MAGIC) || memcmp(block, MAGIC, strlen(MAGIC))) {
		int zero = 1;

		for (ssize_t i = 0; i < n && zero; i++)
			zero = !block[i];
		return bad(msg, len, -EBADMSG, path,
			   zero && n ? "no qmigrate header: the save that wrote it did not "
				       "complete"
				     : "not a file written by qmigrate save");
	}
	o = json_tokener_parse(block + strlen(MAGIC));
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return bad(msg, len, -EBADMSG, path, "its qmigrate header is not readable JSON");
	}
	qm_rd_init(&rd, "the save file's header");
	h->format = (int)qm_rd_i64(&rd, o, "format");
	qm_rd_strcpy(&rd, o, "method", h->method, sizeof(h->method));
	h->multifd_channels = (int)qm_rd_i64(&rd, o, "multifd_channels");
	qm_rd_strcpy(&rd, o, "qemu", h->qemu, sizeof(h->qemu));
	h->qemu_version = (unsigned)qm_rd_u64(&rd, o, "qemu_version");
	qm_rd_strcpy(&rd, o, "machine", h->machine, sizeof(h->machine));
	h->ram_bytes = qm_rd_u64(&rd, o, "ram_bytes");
	h->stream_offset = qm_rd_u64(&rd, o, "stream_offset");
	h->stream_bytes = qm_rd_u64(&rd, o, "stream_bytes");
	qm_rd_strcpy(&rd, o, "sha256", h->sha256, sizeof(h->sha256));
	qm_rd_opt_strcpy(&rd, o, "guest", h->guest, sizeof(h->guest), "none");
	h->was_running = qm_rd_opt_bool(&rd, o, "was_running", 1);
	h->saved_at = qm_rd_opt_i64(&rd, o, "saved_at", 0);
	json_object_put(o);
	if (rd.err) {
		snprintf(msg, len, "%s: bad header: %s", path, rd.msg);
		return -EBADMSG;
	}
	if (h->format != 1)
		r = bad(msg, len, -EPROTONOSUPPORT, path,
			"header format is not 1 (a newer qmigrate?)");
	else if (strcmp(h->method, "mapped-ram") && strcmp(h->method, "stream"))
		r = bad(msg, len, -EBADMSG, path, "unknown save method in its header");
	else if (h->multifd_channels < 0 || h->multifd_channels > 255)
		r = bad(msg, len, -EBADMSG, path, "impossible multifd channel count");
	else if (h->stream_offset < QMIG_SAVE_HEADER_SIZE || h->stream_offset > (1u << 20) ||
		 h->stream_offset % 4096)
		r = bad(msg, len, -EBADMSG, path, "impossible stream offset");
	else if (strlen(h->sha256) != 64 || strspn(h->sha256, "0123456789abcdef") != 64)
		r = bad(msg, len, -EBADMSG, path, "the header's checksum is not SHA-256 hex");
	else if (!h->machine[0] || strspn(h->machine, "abcdefghijklmnopqrstuvwxyz0123456789.-_") !=
				       strlen(h->machine))
		r = bad(msg, len, -EBADMSG, path, "impossible machine type in its header");
	else if (fstat(fd, &st) < 0 || (uint64_t)st.st_size < h->stream_offset ||
		 (uint64_t)st.st_size - h->stream_offset != h->stream_bytes)
		r = bad(msg, len, -EBADMSG, path,
			"the file's length does not match its header (truncated or appended to)");
	return r;
}

int qmig_save_read_header(const char *path, struct qmig_save_header *out, char *msg, size_t msg_len)
{
	struct qmig_save_header h;
	int fd, r;

	if (!path || !out)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(msg, msg_len, "%s: %s", path, strerror(-r));
		return r;
	}
	r = qm_sf_parse_header(fd, path, &h, msg, msg_len);
	close(fd);
	if (r == 0)
		*out = h;
	return r;
}
