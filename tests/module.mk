# The unit-test driver; each module's module.mk adds its own test files.
UNIT_SRCS += tests/unit/unit_main.c
# Programs the shell tests use; built by check, never run as tests.
TEST_HELPERS += tests/helpers/holdports tests/helpers/qmp_cut
# Migration end to end (engine/ + tools/), against real QEMU.
ITEST_PROGS += tests/integration/migrate_embed tests/integration/embed_delay \
	tests/integration/embed_abandon
ITEST_SCRIPTS += tests/integration/migrate_basic.sh tests/integration/migrate_fail.sh \
	tests/integration/migrate_concurrent.sh tests/integration/migrate_netns.sh
ITEST_SCRIPTS += tests/integration/migrate_features.sh tests/integration/migrate_recover.sh
ITEST_SCRIPTS += tests/integration/migrate_tls.sh tests/integration/migrate_relay.sh \
	tests/integration/migrate_relay_fault.sh
TEST_HELPERS += tests/helpers/qmp_older tests/helpers/qmp_hostile
ITEST_SCRIPTS += tests/integration/migrate_caps.sh tests/integration/qmp_leftover.sh
ITEST_SCRIPTS += tests/integration/hostile_peer.sh tests/lint_json.sh tests/lint_wait.sh
ITEST_SCRIPTS += tests/lint_layout.sh
ITEST_SCRIPTS += tests/integration/verify_memory.sh
# QEMU 10.0 (tools/qemu-cache.sh): 10.0->10.0, 7.2->10.0, 10.0->7.2 refused;
# the same scenario matrix (qemu10_lib.sh) on 7.2->7.2 too.
ITEST_SCRIPTS += tests/integration/cross_version.sh tests/integration/qemu10_same.sh
ITEST_SCRIPTS += tests/integration/qemu10_verify.sh tests/integration/qemu72_same.sh
ITEST_SCRIPTS += tests/integration/qemu10_features.sh tests/integration/qemu10_features_run.sh \
	tests/integration/qemu10_bench.sh
ITEST_FULL_SCRIPTS += tests/integration/qemu10_verify_full.sh
# Storage migration (engine/storage/storage.c): one host, the refusals.
ITEST_SCRIPTS += tests/integration/storage_basic.sh tests/integration/storage_qemu10.sh
# Storage migration (engine/storage/storage.c) with the Linux guest: these take minutes.
ITEST_FULL_SCRIPTS += tests/integration/storage_inc.sh tests/integration/storage_netns.sh \
	tests/integration/storage_fail.sh tests/integration/storage_cut.sh
ITEST_SCRIPTS += tests/lint_library.sh
UNIT_SRCS += tests/unit/test_abi.c
ITEST_SCRIPTS += tests/integration/verify_guest.sh
