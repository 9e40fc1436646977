# bench: sources and tests of this module
BENCH_PROGS += bench/qmp_bench
BENCH_SCRIPTS += bench/migrate_latency.sh bench/tls_bench.sh
# Storage migration: time, downtime, disk write rate, cancel (make bench-storage).
# (bench/storage_bench.sh: its own target, it takes minutes)
ITEST_SCRIPTS += tests/integration/bench_quick.sh
BENCH_PROGS += bench/relay_probe

# make bench-peers: libvirt, QEMU driven by plain QMP and qmigrate, side by
# side in one run (bench/peers.sh; BENCH_REPEATS=N for more or fewer rounds).
.PHONY: bench-peers bench-peers-run
bench-peers: deps
	@sh tools/deps.sh bench
	@$(MAKE) --no-print-directory bench-peers-run

bench-peers-run: all build/bench/peer_tool
	@sh bench/peers.sh
# bench/migrate_latency.sh compares qmigrate with the bare QMP driver.
bench-run: build/bench/peer_tool

# make bench-net: guest-visible network disruption, the Linux guest on a
# bridge, plain QMP and qmigrate side by side (bench/peers.sh, BENCH_GUEST=linux).
.PHONY: bench-net bench-net-run
bench-net: deps
	@$(MAKE) --no-print-directory bench-net-run

bench-net-run: all build/bench/peer_tool
	@sh tests/guests/linux/build.sh
	@BENCH_GUEST=linux sh bench/peers.sh
