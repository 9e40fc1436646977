# engine/: launching QEMU, planning and running migrations.
LIB_SRCS += engine/version.c
PUBLIC_HEADERS += engine/qmigrate.h engine/qmig_launch.h
PUBLIC_HEADERS += engine/qmig_migrate.h
LIB_SRCS += engine/launch.c engine/launch_spawn.c engine/launch_args.c engine/launch_accel.c
LIB_SRCS += engine/heartbeat.c engine/verify_tiny.c
# The migration: state machine, plan, monitor, memory comparison.
LIB_SRCS += engine/migrate.c engine/phases.c engine/plan.c engine/monitor.c engine/verify_mem.c
LIB_SRCS += engine/postcopy.c
LIB_SRCS += engine/tls.c
