# engine/: launching QEMU, planning and running migrations.
LIB_SRCS += engine/version.c
PUBLIC_HEADERS += engine/qmigrate.h engine/qmig_launch.h
PUBLIC_HEADERS += engine/qmig_migrate.h
