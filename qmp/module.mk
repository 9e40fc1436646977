# qmp/: the QMP protocol core, connection, schema and command vocabulary.
LIB_SRCS += qmp/core.c qmp/conn.c qmp/schema.c qmp/commands.c qmp/reply.c qmp/wait.c
PUBLIC_HEADERS += qmp/qmig_qmp.h qmp/qmig_commands.h
# Canned-byte tests, schema lookups, and the malformed-input suite against
# a scripted fake peer (run under ASan in unit-asan).
UNIT_SRCS += tests/unit/test_qmp_core.c tests/unit/test_qmp_schema.c \
	tests/unit/test_qmp_peer.c tests/fakepeer/fakepeer.c tests/unit/test_wait.c
UNIT_SRCS += tests/unit/test_storage_reply.c
ITEST_PROGS += tests/integration/qmp_real
ITEST_SCRIPTS += tests/integration/qmp_cli.sh
