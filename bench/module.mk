# bench: sources and tests of this module
BENCH_PROGS += bench/qmp_bench
BENCH_SCRIPTS += bench/migrate_latency.sh bench/tls_bench.sh
# Storage migration: time, downtime, disk write rate, cancel (make bench-storage).
# (bench/storage_bench.sh: its own target, it takes minutes)
ITEST_SCRIPTS += tests/integration/bench_quick.sh
