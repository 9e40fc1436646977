# qmigrate build configuration: variables only, rules live in the Makefile.

VERSION = 0.1.0
SOVERSION = 1

PREFIX = /usr/local
LIBDIR = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
BINDIR = $(PREFIX)/bin
DATADIR = $(PREFIX)/share
MANPREFIX = $(PREFIX)/share/man

PKG_CONFIG = pkg-config
DEPS = json-c liburing libcap-ng openssl
TEST_DEPS = cunit

CC = cc
CFLAGS = -O2 -g
LDFLAGS =
SAN_FLAGS = -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

# The freestanding test guest: a 32-bit multiboot kernel.
# gcc-specific flags (see tests/guests/module.mk): the guest is always built with gcc.
GUEST_CC = gcc
GUEST_LD = ld
