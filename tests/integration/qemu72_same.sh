# The matrix on QEMU 7.2 -> 7.2 (Debian's own QEMU): the scenarios every
# pair must pass (qemu10_lib.sh: basic, multifd, --verify=memory, TLS, a
# policy, two network namespaces, postcopy with recovery), each completed
# and verified. qemu10_same.sh and cross_version.sh run the same on
# 10.0 -> 10.0 and 7.2 -> 10.0.
. tests/integration/qemu10_lib.sh
Q72=$(command -v qemu-system-x86_64) || skip "qemu-system-x86_64 (7.2) not installed"
SRCQ=$Q72 DSTQ=$Q72 PAIR="7.2->7.2"
xv_scenarios
ok "QEMU 7.2 -> 7.2"
