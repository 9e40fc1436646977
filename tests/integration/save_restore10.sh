# The QEMU 10.0 half of save_restore.sh: mapped-ram with multifd 4 on a
# 1 GiB writing guest, launch mode (mapped-ram and --plain), the refusals
# of an older QEMU and another RAM size, a 7.2 file restored by 10.0.
SR_PART=10.0
. tests/integration/save_restore.sh
