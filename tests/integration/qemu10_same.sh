# QEMU 10.0 -> QEMU 10.0 (Debian backports, via tools/qemu-cache.sh): basic,
# multifd, --verify=memory, TLS, a policy, and postcopy with recovery
# between two network namespaces; every run completes and verifies.
. tests/integration/qemu10_lib.sh
q10_fetch
SRCQ=$Q10 DSTQ=$Q10 PAIR="10.0->10.0"
xv_scenarios
ok "QEMU 10.0 -> 10.0"
