# check-full: the QEMU 10.0 canary of qemu10_verify.sh, 5 runs.
QMIG_REPEAT=5
. tests/integration/qemu10_verify.sh
