# The unit-test driver; each module's module.mk adds its own test files.
UNIT_SRCS += tests/unit/unit_main.c
# Programs the shell tests use; built by check, never run as tests.
TEST_HELPERS += tests/helpers/holdports
