# engine/: launching QEMU, planning and running migrations.
LIB_SRCS += engine/core/version.c
PUBLIC_HEADERS += engine/qmigrate.h engine/qmig_launch.h
PUBLIC_HEADERS += engine/qmig_migrate.h engine/qmig_guest.h
LIB_SRCS += engine/launch/launch.c engine/launch/launch_spawn.c engine/launch/launch_args.c engine/launch/launch_accel.c
LIB_SRCS += engine/guest/guest.c engine/launch/launch_gc.c
# The migration: state machine, plan, monitor, memory comparison.
LIB_SRCS += engine/migrate/features.c
UNIT_SRCS += tests/unit/test_features.c
LIB_SRCS += engine/migrate/migrate.c engine/migrate/phases.c engine/migrate/plan.c engine/converge/monitor.c engine/verify/verify_mem.c
UNIT_SRCS += tests/unit/test_launch.c
LIB_SRCS += engine/migrate/postcopy.c engine/link/relay_link.c
LIB_SRCS += engine/link/tls.c
# Storage without shared disks: NBD + blockdev-mirror.
LIB_SRCS += engine/storage/storage.c engine/storage/storage_clean.c
ITEST_PROGS += tests/integration/launch_fail tests/integration/launch_life
ITEST_SCRIPTS += tests/integration/launch_cli.sh
# Convergence: the model, the policies, the simulator, the live wiring.
LIB_SRCS += engine/converge/predict.c engine/converge/policy.c engine/converge/sim.c engine/converge/converge.c
PUBLIC_HEADERS += engine/qmig_policy.h
UNIT_SRCS += tests/unit/test_policy.c
ITEST_SCRIPTS += tests/integration/policy_live.sh tests/integration/policy_declare.sh \
	tests/integration/guest_pace.sh
# The doctor: known bugs and traps, also checked before every migration.
LIB_SRCS += engine/doctor/doctor.c
LIB_SRCS += engine/doctor/versions.c
PUBLIC_HEADERS += engine/qmig_doctor.h
ITEST_SCRIPTS += tests/integration/doctor.sh
ITEST_SCRIPTS += tests/integration/preflight.sh
# Steering a running migration, the convergence verdict, the completion bound.
LIB_SRCS += engine/converge/steer.c
# Ownership, the job journal and recovery of dead jobs.
LIB_SRCS += engine/journal/journal.c engine/migrate/recover.c
PUBLIC_HEADERS += engine/qmig_journal.h
ITEST_SCRIPTS += tests/integration/migrate_kill.sh tests/integration/local_files.sh
ITEST_SCRIPTS += tests/integration/migrate_ownership.sh
ITEST_SCRIPTS += tests/integration/migrate_postcopy_timeout.sh
# The kill matrix: a subset in make check, every case in make check-full.
ITEST_SCRIPTS += tests/integration/migrate_kill_matrix.sh
ITEST_FULL_SCRIPTS += tests/integration/migrate_kill_matrix_full.sh
# Save/restore to a file (mapped-ram or a plain stream) and live update (cpr-transfer).
LIB_SRCS += engine/save/save.c engine/save/restore.c engine/save/save_file.c engine/save/save_util.c engine/save/cpr.c engine/save/cpr_new.c
PUBLIC_HEADERS += engine/qmig_save.h
ITEST_SCRIPTS += tests/integration/save_restore.sh tests/integration/save_restore10.sh tests/integration/update.sh
UNIT_SRCS += tests/unit/test_save.c
# Migrations between hosts: the source side of the agent protocol.
LIB_SRCS += engine/agent/agent_io.c engine/agent/agent_client.c
PUBLIC_HEADERS += engine/qmig_agent.h
UNIT_SRCS += tests/unit/test_agent.c
# The bottom (core/: emit, plan steps) and the pieces that left a circle.
LIB_SRCS += engine/core/emit.c engine/core/proc.c engine/core/steps.c engine/journal/action.c engine/migrate/xver.c
