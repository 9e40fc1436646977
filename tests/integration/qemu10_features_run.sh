# The real migrations of qemu10_features.sh: zstd, switchover-ack and the
# relay's unix channels on 10.0->10.0, zlib on 7.2->10.0, each verified.
FEAT_PART=run
. tests/integration/qemu10_features.sh
