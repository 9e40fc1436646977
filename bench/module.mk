# bench: sources and tests of this module
BENCH_PROGS += bench/qmp_bench
BENCH_SCRIPTS += bench/migrate_latency.sh bench/tls_bench.sh
ITEST_SCRIPTS += tests/integration/bench_quick.sh
BENCH_PROGS += bench/relay_probe
