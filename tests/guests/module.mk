# tests/guests: the built-in test guests.
# Their host side (heartbeat reader, the tiny guest's verifier, the guest
# plug-in): a test-support library for the CLI and the tests, not part of
# libqmigrate (docs/ARCHITECTURE.md, "Test guests").
GUESTS_LIB_SRCS = tests/guests/host/heartbeat.c tests/guests/host/verify_tiny.c tests/guests/host/boot.c
# The tiny guest: a freestanding 32-bit multiboot kernel (see tests/guests/tiny/tiny.c).
TINY_DIR = tests/guests/tiny
TINY_CFLAGS = -m32 -march=i686 -ffreestanding -fno-pic -fno-pie -fno-stack-protector \
	-nostdlib -O2 -std=gnu11 -Wall -Wextra -Werror -mno-sse -mno-mmx -mno-80387 \
	-fno-asynchronous-unwind-tables -fno-tree-loop-distribute-patterns
TINY_OBJS = $(TINY_DIR)/boot.o $(TINY_DIR)/tiny.o

GUEST_TARGETS += $(TINY_DIR)/tiny.elf
GUEST_CLEAN += $(TINY_DIR)/tiny.elf $(TINY_OBJS)

$(TINY_DIR)/tiny.o: $(TINY_DIR)/tiny.c $(TINY_DIR)/tiny_abi.h tests/guests/module.mk
	$(quiet) GUEST-CC $<
	$(Q)$(GUEST_CC) $(TINY_CFLAGS) -c -o $@ $<

$(TINY_DIR)/boot.o: $(TINY_DIR)/boot.S tests/guests/module.mk
	$(quiet) GUEST-AS $<
	$(Q)$(GUEST_CC) $(TINY_CFLAGS) -c -o $@ $<

$(TINY_DIR)/tiny.elf: $(TINY_OBJS) $(TINY_DIR)/link.ld
	$(quiet) GUEST-LD $@
	$(Q)$(GUEST_LD) -m elf_i386 -T $(TINY_DIR)/link.ld -nostdlib --no-warn-rwx-segments -o $@ $(TINY_OBJS)
ITEST_PROGS += tests/integration/guest_tiny

# The Linux guest: Debian's kernel and busybox with our /init, in a cache
# directory outside the tree (tests/guests/linux/build.sh says where).
.PHONY: linux-guest
linux-guest:
	@sh tests/guests/linux/build.sh
ITEST_SCRIPTS += tests/integration/linux_boot.sh tests/integration/linux_guest.sh
