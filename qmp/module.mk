# qmp/: the QMP protocol core, connection, schema and command vocabulary.
PUBLIC_HEADERS += qmp/qmig_qmp.h qmp/qmig_commands.h
