# The unit-test driver; each module's module.mk adds its own test files.
UNIT_SRCS += tests/unit/unit_main.c
