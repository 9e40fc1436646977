# bench: sources and tests of this module
BENCH_PROGS += bench/qmp_bench
