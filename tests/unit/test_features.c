/* The address arguments of migrate / migrate-incoming (engine/features.c):
 * the channels form when both QEMUs take it (inet, IPv6, the relay's unix
 * sockets), the uri form otherwise. Which features a pair of real QEMUs
 * gets is checked in tests/integration/qemu10_features.sh. */
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "migrate/migrate.h"

static const char *str_at(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL, *k;

	snprintf(buf, sizeof(buf), "%s", path);
	for (k = strtok_r(buf, ".", &save); k && o; k = strtok_r(NULL, ".", &save)) {
		if (!strcmp(k, "0"))
			o = json_object_is_type(o, json_type_array) ? json_object_array_get_idx(o, 0)
								    : NULL;
		else if (!json_object_object_get_ex(o, k, &o))
			o = NULL;
	}
	return o && json_object_is_type(o, json_type_string) ? json_object_get_string(o) : NULL;
}

static void test_addr_args(void)
{
	struct qmig_migration *m = calloc(1, sizeof(*m));
	struct json_object *a;
	const char *s;

	CU_ASSERT_FATAL(m != NULL);
	m->feat = calloc(1, sizeof(*m->feat));
	CU_ASSERT_FATAL(m->feat != NULL);
	/* Not used: the uri, whatever the address. */
	a = qm_features_addr_args(m, "127.0.0.1", 49152, "tcp:127.0.0.1:49152");
	s = str_at(a, "uri");
	CU_ASSERT(s && !strcmp(s, "tcp:127.0.0.1:49152"));
	CU_ASSERT(!json_object_object_get_ex(a, "channels", NULL));
	json_object_put(a);

	m->feat->used[QM_F_CHANNELS] = 1;
	a = qm_features_addr_args(m, "::1", 49153, "tcp:[::1]:49153");
	CU_ASSERT(!json_object_object_get_ex(a, "uri", NULL));
	s = str_at(a, "channels.0.channel-type");
	CU_ASSERT(s && !strcmp(s, "main"));
	s = str_at(a, "channels.0.addr.type");
	CU_ASSERT(s && !strcmp(s, "inet"));
	s = str_at(a, "channels.0.addr.host");
	CU_ASSERT(s && !strcmp(s, "::1")); /* no brackets in the channel form */
	s = str_at(a, "channels.0.addr.port");
	CU_ASSERT(s && !strcmp(s, "49153"));
	json_object_put(a);

	a = qm_features_addr_args(m, NULL, 0, "unix:/run/x/in-0.sock");
	s = str_at(a, "channels.0.addr.type");
	CU_ASSERT(s && !strcmp(s, "unix"));
	s = str_at(a, "channels.0.addr.path");
	CU_ASSERT(s && !strcmp(s, "/run/x/in-0.sock"));
	json_object_put(a);

	/* Anything else stays a uri. */
	a = qm_features_addr_args(m, NULL, 0, "fd:mig");
	s = str_at(a, "uri");
	CU_ASSERT(s && !strcmp(s, "fd:mig"));
	json_object_put(a);
	free(m->feat);
	free(m);
}

UNIT_SUITE(features, NULL, NULL, {"addr_args", test_addr_args})
