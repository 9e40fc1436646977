/* libFuzzer: the schema prober, query-qmp-schema's "return" in, then
 * every question the engine asks of a schema. */
#include <errno.h>
#include <stdlib.h>

#include "fuzz_json.h"
#include "qmig_qmp.h"
#include "qmp_reply.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct json_object *v = fuzz_json(data, size);
	struct qmig_schema *s = NULL;
	struct qm_rd rd;
	int r;

	if (!v)
		return 0;
	qm_rd_init(&rd, "query-qmp-schema");
	r = qm_schema_from_json_rd(&s, v, &rd);
	if (r < 0 && r != -ENOMEM && !rd.msg[0])
		abort(); /* a refusal names what was wrong */
	if (r == 0) {
		const char *const *p;

		qmig_schema_has_command(s, "migrate");
		qmig_schema_has_command(s, "query-migrate");
		qmig_schema_has_event(s, "MIGRATION");
		qmig_schema_has_arg(s, "migrate", "uri");
		qmig_schema_has_arg(s, "migrate-set-parameters", "downtime-limit");
		qmig_schema_has_capability(s, "postcopy-ram");
		qmig_schema_has_parameter(s, "max-bandwidth");
		qmig_schema_has_enum_value(s, "migrate-set-parameters", "multifd-compression",
					   "zstd");
		qmig_schema_has_enum_value(s, "migrate-set-capabilities", "capabilities", "xbzrle");
		for (p = qmig_schema_capabilities(s); p && *p; p++)
			qmig_schema_has_capability(s, *p);
		for (p = qmig_schema_parameters(s); p && *p; p++)
			qmig_schema_has_parameter(s, *p);
		qmig_schema_free(s);
	}
	json_object_put(v);
	return 0;
}
