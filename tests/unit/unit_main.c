#include <stdio.h>
#include <string.h>
#include <CUnit/Basic.h>

#include "qmig_guests.h"
#include "qmig_launch.h"
#include "unit.h"

static struct unit_suite *suites;

void unit_register(struct unit_suite *s)
{
	s->next = suites;
	suites = s;
}

/* usage: unit [SUITE] — run every suite, or only the one named. */
int main(int argc, char **argv)
{
	unsigned failed;

	/* The library reads no environment and knows no source tree: the
	 * argv tests find this tree's test guests through the defaults. */
	struct qmig_launch_defaults d = QMIG_LAUNCH_DEFAULTS_INIT;

	d.guest_dir = QMIG_BUILD_GUESTDIR;
	d.guest_ops = &qmig_test_guest_ops; /* the test guests' command lines */
	if (qmig_launch_defaults_set(&d) < 0)
		return 2;
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	for (struct unit_suite *s = suites; s; s = s->next) {
		if (argc > 1 && strcmp(argv[1], s->name) != 0)
			continue;
		CU_pSuite cs = CU_add_suite(s->name, s->init, s->cleanup);
		if (!cs)
			return 2;
		for (const struct unit_test *t = s->tests; t->name; t++)
			if (!CU_add_test(cs, t->name, t->fn))
				return 2;
	}
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
	if (CU_get_number_of_suites_failed())
		failed++;
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
