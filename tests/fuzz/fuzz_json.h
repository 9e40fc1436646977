/* Shared by the fuzzers that take one JSON value: parse it as the QMP
 * core would (strict, bounded depth), NULL when it is not JSON. */
#ifndef QMIG_FUZZ_JSON_H
#define QMIG_FUZZ_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

static inline struct json_object *fuzz_json(const uint8_t *data, size_t size)
{
	struct json_tokener *tok;
	struct json_object *o;

	if (size > (1u << 20))
		return NULL;
	tok = json_tokener_new_ex(64);
	if (!tok)
		return NULL;
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	o = json_tokener_parse_ex(tok, (const char *)data, (int)size);
	json_tokener_free(tok);
	return o;
}

#endif
