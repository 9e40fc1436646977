# tools/: the qmigrate command line.
TOOL_SRCS += tools/qmigrate.c tools/util.c tools/cmd_qmp.c tools/cmd_tls.c
MAN_PAGES += docs/qmigrate.1
