# qmp/: the QMP protocol core, connection, schema and command vocabulary.
LIB_SRCS += qmp/core.c qmp/conn.c qmp/schema.c qmp/commands.c
PUBLIC_HEADERS += qmp/qmig_qmp.h qmp/qmig_commands.h
