/* Unit-test registration: each test file registers its suite from a
 * constructor, so no central list has to be edited when a file is added. */
#ifndef QMIG_UNIT_H
#define QMIG_UNIT_H

#include <CUnit/CUnit.h>

struct unit_test {
	const char *name;
	void (*fn)(void);
};

struct unit_suite {
	const char *name;
	int (*init)(void);
	int (*cleanup)(void);
	const struct unit_test *tests;
	struct unit_suite *next;
};

void unit_register(struct unit_suite *s);

/* UNIT_SUITE(name, init, cleanup, { "t1", fn1 }, { "t2", fn2 }) */
#define UNIT_SUITE(sname, sinit, scleanup, ...)                                \
	static const struct unit_test sname##_tests[] = {__VA_ARGS__, {0, 0}}; \
	static struct unit_suite sname##_suite = {#sname, sinit, scleanup,     \
						  sname##_tests, 0};           \
	__attribute__((constructor)) static void sname##_register(void)         \
	{                                                                      \
		unit_register(&sname##_suite);                                 \
	}

#endif
