# tools/: the qmigrate command line.
TOOL_SRCS += tools/qmigrate.c tools/util.c
MAN_PAGES += docs/qmigrate.1
