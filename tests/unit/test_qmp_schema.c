/* Schema probing from canned query-qmp-schema output: the real one of
 * QEMU 7.2 (tests/data/qmp-schema-7.2.json) and a small hand-made one in
 * the newer style (enums with "members" only). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <json-c/json.h>

#include "qmig_qmp.h"
#include "unit.h"

#define SCHEMA_72 "tests/data/qmp-schema-7.2.json"

static struct json_object *load_72(void)
{
	struct json_object *o = json_object_from_file(SCHEMA_72);

	/* Run from the build tree's root; fall back to the source path. */
	if (!o)
		o = json_object_from_file(QMIG_BUILD_GUESTDIR "/../data/qmp-schema-7.2.json");
	return o;
}

static void test_qemu72(void)
{
	struct json_object *arr = load_72();
	struct qmig_schema *s = NULL;
	const char *const *v;
	int n = 0, sorted = 1;

	CU_ASSERT_FATAL(arr != NULL);
	CU_ASSERT_FATAL(qmig_schema_from_json(&s, arr) == 0);
	json_object_put(arr); /* the schema keeps its own reference */

	CU_ASSERT(qmig_schema_has_command(s, "query-migrate"));
	CU_ASSERT(qmig_schema_has_command(s, "migrate-set-capabilities"));
	CU_ASSERT(!qmig_schema_has_command(s, "no-such-command"));
	CU_ASSERT(qmig_schema_has_event(s, "MIGRATION_PASS"));
	CU_ASSERT(qmig_schema_has_event(s, "STOP"));
	CU_ASSERT(!qmig_schema_has_event(s, "query-migrate"));

	CU_ASSERT(qmig_schema_has_capability(s, "postcopy-ram"));
	CU_ASSERT(qmig_schema_has_capability(s, "multifd"));
	CU_ASSERT(qmig_schema_has_capability(s, "events"));
	CU_ASSERT(qmig_schema_has_capability(s, "zero-copy-send"));
	CU_ASSERT(!qmig_schema_has_capability(s, "mapped-ram")); /* QEMU 9.0 */
	CU_ASSERT(!qmig_schema_has_capability(s, "multifd-channels"));

	CU_ASSERT(qmig_schema_has_parameter(s, "multifd-channels"));
	CU_ASSERT(qmig_schema_has_parameter(s, "downtime-limit"));
	CU_ASSERT(qmig_schema_has_parameter(s, "max-bandwidth"));
	CU_ASSERT(qmig_schema_has_parameter(s, "tls-creds"));
	CU_ASSERT(!qmig_schema_has_parameter(s, "postcopy-ram"));
	CU_ASSERT(!qmig_schema_has_parameter(s, "vcpu-dirty-limit")); /* QEMU 8.1 */

	CU_ASSERT(qmig_schema_has_arg(s, "migrate", "uri"));
	CU_ASSERT(qmig_schema_has_arg(s, "migrate", "resume"));
	CU_ASSERT(!qmig_schema_has_arg(s, "migrate", "channels")); /* QEMU 8.2 */
	CU_ASSERT(!qmig_schema_has_arg(s, "query-status", "x"));

	CU_ASSERT(qmig_schema_has_enum_value(s, "calc-dirty-rate", "mode", "page-sampling"));
	CU_ASSERT(qmig_schema_has_enum_value(s, "calc-dirty-rate", "mode", "dirty-ring"));
	CU_ASSERT(!qmig_schema_has_enum_value(s, "calc-dirty-rate", "mode", "nope"));
	CU_ASSERT(
	    qmig_schema_has_enum_value(s, "migrate-set-parameters", "multifd-compression", "zstd"));
	/* through an array: migrate-set-capabilities' element type is an object, no enum */
	CU_ASSERT(!qmig_schema_has_enum_value(s, "migrate-set-capabilities", "capabilities",
					      "postcopy-ram"));

	for (v = qmig_schema_capabilities(s); *v; v++, n++)
		if (n && strcmp(v[-1], v[0]) >= 0)
			sorted = 0;
	CU_ASSERT(n == 21 && sorted);
	n = 0;
	for (v = qmig_schema_parameters(s); *v; v++)
		n++;
	CU_ASSERT(n == 27); /* QEMU 7.2 has 27 migration parameters */
	qmig_schema_free(s);
}

/* Masked names, members-only enums, an alternate, an unknown meta-type. */
static const char mini[] =
    "[{\"name\": \"migrate-set-capabilities\", \"meta-type\": \"command\", "
    "  \"arg-type\": \"1\", \"ret-type\": \"0\"},"
    " {\"name\": \"migrate-set-parameters\", \"meta-type\": \"command\", \"arg-type\": \"5\"},"
    " {\"name\": \"0\", \"meta-type\": \"object\", \"members\": []},"
    " {\"name\": \"1\", \"meta-type\": \"object\", \"members\": "
    "  [{\"name\": \"capabilities\", \"type\": \"[2]\"}]},"
    " {\"name\": \"[2]\", \"meta-type\": \"array\", \"element-type\": \"2\"},"
    " {\"name\": \"2\", \"meta-type\": \"object\", \"members\": "
    "  [{\"name\": \"capability\", \"type\": \"3\"}, {\"name\": \"state\", \"type\": \"bool\"}]},"
    " {\"name\": \"3\", \"meta-type\": \"enum\", \"members\": "
    "  [{\"name\": \"xbzrle\"}, {\"name\": \"mapped-ram\"}, {\"name\": \"events\"}]},"
    " {\"name\": \"5\", \"meta-type\": \"object\", \"members\": "
    "  [{\"name\": \"mode\", \"type\": \"6\", \"default\": null},"
    "   {\"name\": \"zeta\", \"type\": \"int\"}]},"
    " {\"name\": \"6\", \"meta-type\": \"alternate\", \"members\": "
    "  [{\"type\": \"null\"}, {\"type\": \"7\"}]},"
    " {\"name\": \"7\", \"meta-type\": \"enum\", \"values\": [\"fast\", \"slow\"]},"
    " {\"name\": \"bool\", \"meta-type\": \"builtin\", \"json-type\": \"boolean\"},"
    " {\"name\": \"MIGRATION\", \"meta-type\": \"event\", \"arg-type\": \"0\"},"
    " {\"name\": \"99\", \"meta-type\": \"from-the-future\"}]";

static void test_mini(void)
{
	struct json_object *arr = json_tokener_parse(mini);
	struct qmig_schema *s = NULL;
	const char *const *caps;

	CU_ASSERT_FATAL(arr != NULL);
	CU_ASSERT_FATAL(qmig_schema_from_json(&s, arr) == 0);
	json_object_put(arr);
	CU_ASSERT(qmig_schema_has_capability(s, "mapped-ram"));
	CU_ASSERT(!qmig_schema_has_capability(s, "postcopy-ram"));
	caps = qmig_schema_capabilities(s);
	CU_ASSERT_STRING_EQUAL(caps[0], "events");
	CU_ASSERT_STRING_EQUAL(caps[1], "mapped-ram");
	CU_ASSERT_STRING_EQUAL(caps[2], "xbzrle");
	CU_ASSERT(caps[3] == NULL);
	CU_ASSERT(qmig_schema_has_parameter(s, "zeta"));
	CU_ASSERT(qmig_schema_has_enum_value(s, "migrate-set-parameters", "mode", "slow"));
	CU_ASSERT(!qmig_schema_has_enum_value(s, "migrate-set-parameters", "zeta", "slow"));
	CU_ASSERT(qmig_schema_has_event(s, "MIGRATION"));
	CU_ASSERT(!qmig_schema_has_command(s, "MIGRATION"));
	qmig_schema_free(s);
}

static void test_empty_and_bad(void)
{
	struct json_object *arr = json_object_new_array(), *obj = json_object_new_object();
	struct qmig_schema *s = NULL;

	CU_ASSERT(qmig_schema_from_json(&s, obj) == -EINVAL);
	CU_ASSERT(s == NULL);
	CU_ASSERT(qmig_schema_from_json(&s, arr) == 0);
	CU_ASSERT(!qmig_schema_has_capability(s, "xbzrle"));
	CU_ASSERT(qmig_schema_capabilities(s)[0] == NULL);
	CU_ASSERT(qmig_schema_parameters(s)[0] == NULL);
	CU_ASSERT(!qmig_schema_has_enum_value(s, "a", "b", "c"));
	qmig_schema_free(s);
	qmig_schema_free(NULL);
	CU_ASSERT(!qmig_schema_has_command(NULL, "x"));
	/* a wrong shape anywhere an entity is read is refused, not skipped */
	static const char *const bad[] = {
	    "[{\"no-name\": 1}]",
	    "[1]",
	    "[{\"name\": \"x\", \"meta-type\": null}]",
	    "[{\"name\": \"x\", \"meta-type\": \"object\", \"members\": {}}]",
	    "[{\"name\": \"x\", \"meta-type\": \"object\", \"members\": [{\"name\": 1}]}]",
	    "[{\"name\": \"x\", \"meta-type\": \"enum\", \"values\": [null]}]",
	    "[{\"name\": \"x\", \"meta-type\": \"enum\", \"members\": [\"a\"]}]",
	    "[{\"name\": \"x\", \"meta-type\": \"alternate\", \"members\": 7}]",
	    "[{\"name\": \"x\", \"meta-type\": \"command\"}]",
	    "[{\"name\": \"x\", \"meta-type\": \"array\", \"element-type\": []}]",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct json_object *b = json_tokener_parse(bad[i]);

		s = NULL;
		CU_ASSERT_FATAL(b != NULL);
		if (qmig_schema_from_json(&s, b) != -EPROTO) {
			fprintf(stderr, "\n    accepted: %s\n", bad[i]);
			CU_FAIL("bad schema accepted");
		}
		CU_ASSERT(s == NULL);
		json_object_put(b);
	}
	json_object_put(arr);
	json_object_put(obj);
}

/* clang-format off */
UNIT_SUITE(qmp_schema, NULL, NULL,
	   {"QEMU 7.2 schema", test_qemu72},
	   {"masked names, new-style enums, alternates", test_mini},
	   {"empty and bad input", test_empty_and_bad})
/* clang-format on */
