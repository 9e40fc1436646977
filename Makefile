# qmigrate — see README. Variables live in config.mk; each module lists its
# own sources in its module.mk so the layout of the tree is the layout of the build.

include config.mk

ifeq ($(V),1)
Q =
quiet = @:
else
Q = @
quiet = @printf '  %-8s %s\n'
endif

# Filled in by the module files below.
LIB_SRCS =
PUBLIC_HEADERS =
TOOL_SRCS =
UNIT_SRCS =
ITEST_PROGS =
ITEST_SCRIPTS =
ITEST_FULL_SCRIPTS =
GUEST_TARGETS =
BENCH_PROGS =
BENCH_SCRIPTS =
TEST_HELPERS =
EXAMPLE_PLUGINS =
MAN_PAGES =

include qmp/module.mk
include transport/module.mk
include engine/module.mk
include tools/module.mk
include tests/guests/module.mk
include tests/module.mk
include bench/module.mk
include examples/module.mk
include tests/fuzz/module.mk

# Evaluated lazily: `make check` and `make demo` install missing packages first.
DEP_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(DEPS))
DEP_LIBS = $(shell $(PKG_CONFIG) --libs $(DEPS)) -lm
TEST_CFLAGS = $(shell $(PKG_CONFIG) --cflags $(TEST_DEPS))
TEST_LIBS = $(shell $(PKG_CONFIG) --libs $(TEST_DEPS))

WARN = -Wall -Wextra -Werror -Wno-unused-parameter -Wshadow -Wformat=2 -Wstrict-prototypes
INCLUDES = -Iqmp -Itransport -Iengine -Itests/guests/host
QMIG_CFLAGS = -std=gnu11 $(WARN) $(INCLUDES) -fPIC -D_GNU_SOURCE \
	-DQMIG_VERSION='"$(VERSION)"' -ffile-prefix-map=$(CURDIR)=. \
	-DQMIG_INSTALL_GUESTDIR='"$(DATADIR)/qmigrate/guests"' \
	$(DEP_CFLAGS) $(CFLAGS)

OBJ = build/obj
ASAN = build/asan
LIB_OBJS = $(LIB_SRCS:%.c=$(OBJ)/%.o)
LIB_ASAN_OBJS = $(LIB_SRCS:%.c=$(ASAN)/%.o)
GUESTS_OBJS = $(GUESTS_LIB_SRCS:%.c=$(OBJ)/%.o)
GUESTS_ASAN_OBJS = $(GUESTS_LIB_SRCS:%.c=$(ASAN)/%.o)
TOOL_OBJS = $(TOOL_SRCS:%.c=$(OBJ)/%.o)
UNIT_OBJS = $(UNIT_SRCS:%.c=$(OBJ)/%.o)
UNIT_ASAN_OBJS = $(UNIT_SRCS:%.c=$(ASAN)/%.o)
ITEST_BINS = $(ITEST_PROGS:%=build/%)
BENCH_BINS = $(BENCH_PROGS:%=build/%)
HELPER_BINS = $(TEST_HELPERS:%=build/%)
# Only the tests know where this tree's test guests are (the library holds
# no path of the source tree: tests/lint_library.sh).
$(UNIT_OBJS) $(UNIT_ASAN_OBJS) $(ITEST_BINS): QMIG_CFLAGS += -DQMIG_BUILD_GUESTDIR='"$(CURDIR)/tests/guests"'

STATIC_LIB = libqmigrate.a
# The test guests' host side (tests/guests/host): linked by the CLI and the
# tests before libqmigrate, never into it.
GUESTS_LIB = build/libqmigrate-guests.a
SHARED_LIB = libqmigrate.so.$(SOVERSION)
TOOL = tools/qmigrate

.PHONY: abicheck man3 all lib guests check check-run check-full check-full-run unit itest headertest demo demo-run \
	demo-two-hosts demo-two-hosts-run deps \
	bench bench-run bench-storage bench-quick bench-quick-run bench-save bench-relay bench-relay-run install uninstall clean
.DEFAULT_GOAL := all

MAN3_PAGES = $(filter-out build/man/qmigrate.3,$(patsubst %.h,build/man/%.3,$(notdir $(PUBLIC_HEADERS))))

all: lib $(TOOL) guests libqmigrate.pc $(EXAMPLE_PLUGINS) man3

# Section 3: one page per public header, made from the header itself
# (tools/gen-man3.sh), and the overview docs/qmigrate.3.
man3: $(MAN3_PAGES)

build/man/%.3: tools/gen-man3.sh $(PUBLIC_HEADERS)
	@mkdir -p $(dir $@)
	$(Q)sh tools/gen-man3.sh $(filter %/$*.h,$(PUBLIC_HEADERS)) $(VERSION) > $@.tmp && mv $@.tmp $@

lib: $(STATIC_LIB) $(SHARED_LIB)

guests: $(GUEST_TARGETS)

$(OBJ)/%.o: %.c
	$(quiet) CC $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(QMIG_CFLAGS) $(TEST_CFLAGS) -MMD -MP -c -o $@ $<

$(ASAN)/%.o: %.c
	$(quiet) CC-SAN $<
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(QMIG_CFLAGS) $(TEST_CFLAGS) $(SAN_FLAGS) -MMD -MP -c -o $@ $<

$(STATIC_LIB): $(LIB_OBJS)
	$(quiet) AR $@
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(GUESTS_LIB): $(GUESTS_OBJS)
	$(quiet) AR $@
	@mkdir -p $(dir $@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

$(SHARED_LIB): $(LIB_OBJS) libqmigrate.map
	$(quiet) LD $@
	$(Q)$(CC) -shared -Wl,-soname,$(SHARED_LIB) -Wl,--version-script=libqmigrate.map \
		-Wl,-z,defs $(LDFLAGS) -o $@ $(LIB_OBJS) $(DEP_LIBS)
	$(Q)ln -sf $(SHARED_LIB) libqmigrate.so

$(TOOL): $(TOOL_OBJS) $(GUESTS_LIB) $(STATIC_LIB)
	$(quiet) LD $@
	$(Q)$(CC) $(LDFLAGS) -o $@ $(TOOL_OBJS) $(GUESTS_LIB) $(STATIC_LIB) $(DEP_LIBS) -lm

libqmigrate.pc: libqmigrate.pc.in config.mk
	$(quiet) GEN $@
	$(Q)sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

build/tests/unit/unit: $(UNIT_OBJS) $(GUESTS_LIB) $(STATIC_LIB)
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(LDFLAGS) -o $@ $(UNIT_OBJS) $(GUESTS_LIB) $(STATIC_LIB) $(DEP_LIBS) $(TEST_LIBS) -lm

build/tests/unit/unit-asan: $(UNIT_ASAN_OBJS) $(GUESTS_ASAN_OBJS) $(LIB_ASAN_OBJS)
	$(quiet) LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(SAN_FLAGS) $(LDFLAGS) -o $@ $^ $(DEP_LIBS) $(TEST_LIBS) -lm

# Integration programs and benchmarks: one .c each, linked with the static library.
build/%: %.c $(GUESTS_LIB) $(STATIC_LIB)
	$(quiet) CC-LD $@
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(QMIG_CFLAGS) $(TEST_CFLAGS) -MMD -MP $(LDFLAGS) -o $@ $< $(GUESTS_LIB) $(STATIC_LIB) $(DEP_LIBS) $(TEST_LIBS) -lm

# Every public header must stand alone as strict ISO C99.
headertest: man3
	$(Q)for h in $(PUBLIC_HEADERS); do \
		printf '#include "%s"\nint main(void) { return 0; }\n' "$$h" | \
		$(CC) -std=c99 -pedantic -Wall -Wextra -Werror $(INCLUDES) -x c -o /dev/null - \
		|| { echo "headertest: $$h is not ISO C99 clean"; exit 1; }; \
		printf '#include "%s"\nint main() { return 0; }\n' "$$h" | \
		$(CXX) -std=c++17 -Wall -Wextra -Werror $(INCLUDES) -x c++ -o /dev/null - \
		|| { echo "headertest: $$h does not compile as C++17"; exit 1; }; \
	done; echo "  HDRTEST $(words $(PUBLIC_HEADERS)) public headers (C99, C++17)"
	$(Q)for m in docs/qmigrate.3 $(MAN3_PAGES); do \
		w=$$(LC_ALL=C groff -man -ww -z $$m 2>&1); \
		[ -z "$$w" ] || { echo "man page $$m: $$w"; exit 1; }; \
	done; echo "  MANTEST $(words $(MAN3_PAGES)) generated section-3 pages and qmigrate(3)"

# The shared library exports exactly the committed list: an accidental
# export (or a public function gone) fails the build until the list, and
# docs/API.md's rules for changing it, are dealt with.
abicheck: $(SHARED_LIB)
	$(Q)nm -D --defined-only $(SHARED_LIB) | awk '$$3 !~ /^QMIGRATE_/ {print $$3}' | sort \
		> build/symbols.txt
	$(Q)diff -u libqmigrate.symbols build/symbols.txt > build/symbols.diff || \
		{ echo "abicheck: the exported symbols differ from libqmigrate.symbols:"; \
		  cat build/symbols.diff; exit 1; }
	@echo "  ABICHECK $$(wc -l < libqmigrate.symbols) exported symbols as listed"

deps:
	@sh tools/deps.sh

# The README's test command.
check: deps
	@$(MAKE) --no-print-directory check-run

check-run: all headertest abicheck build/tests/unit/unit build/tests/unit/unit-asan $(ITEST_BINS) \
		$(HELPER_BINS)
	@bash tests/run-tests.sh build/tests/unit/unit build/tests/unit/unit-asan \
		$(ITEST_BINS) $(ITEST_SCRIPTS)

# The long matrices (repeats, every QEMU pair): run before resolving an issue.
check-full: deps
	@$(MAKE) --no-print-directory check-full-run

check-full-run: check-run
	@bash tests/run-tests.sh $(ITEST_FULL_SCRIPTS)

# The README's main job: a real live migration of the built-in test guest.
demo: deps
	@$(MAKE) --no-print-directory demo-run

# Two hosts (network namespaces), the agent on one: tools/agent_demo.sh.
demo-two-hosts: deps
	@$(MAKE) --no-print-directory demo-two-hosts-run

demo-two-hosts-run: all
	@sh tools/agent_demo.sh

demo-run: all
	./$(TOOL) migrate --launch --guest tiny --mem 256M --dirty-rate 50M

# Benchmarks print ratios against a baseline measured in the same run.
bench: deps
	@$(MAKE) --no-print-directory bench-run

bench-run: all $(BENCH_BINS) $(HELPER_BINS)
	@for b in $(BENCH_BINS); do echo "== $$b"; ./$$b || exit 1; done
	@for s in $(BENCH_SCRIPTS); do echo "== $$s"; sh $$s || exit 1; done

bench-storage: all
	@sh bench/storage_bench.sh

bench-quick: deps
	@$(MAKE) --no-print-directory bench-quick-run

bench-quick-run: all $(BENCH_BINS)
	@sh bench/quick.sh

# Save/restore (mapped-ram+multifd against the plain stream) and live update
# against a local migration: sh bench/save_bench.sh [RUNS].
bench-save: deps
	@$(MAKE) --no-print-directory all && sh bench/save_bench.sh

# The relay against QEMU's own channels, plain and TLS (bench/relay_bench.sh).
bench-relay: deps
	@$(MAKE) --no-print-directory bench-relay-run

bench-relay-run: all build/bench/relay_probe
	@./build/bench/relay_probe
	@sh bench/relay_bench.sh

install: all
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR)/qmigrate $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(MANPREFIX)/man1 \
		$(DESTDIR)$(DATADIR)/qmigrate/guests
	install -m 644 $(STATIC_LIB) $(DESTDIR)$(LIBDIR)/
	install -m 755 $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(SHARED_LIB) $(DESTDIR)$(LIBDIR)/libqmigrate.so
	install -m 644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/qmigrate/
	install -m 644 libqmigrate.pc $(DESTDIR)$(LIBDIR)/pkgconfig/
	install -m 755 $(TOOL) $(DESTDIR)$(BINDIR)/
	for m in $(MAN_PAGES); do install -m 644 $$m $(DESTDIR)$(MANPREFIX)/man1/; done
	install -d $(DESTDIR)$(MANPREFIX)/man3
	for m in docs/qmigrate.3 $(MAN3_PAGES); do install -m 644 $$m $(DESTDIR)$(MANPREFIX)/man3/; done
	for g in $(GUEST_TARGETS); do install -m 644 $$g $(DESTDIR)$(DATADIR)/qmigrate/guests/; done
	install -d $(DESTDIR)$(DATADIR)/qmigrate/profiles $(DESTDIR)$(DATADIR)/qmigrate/examples
	install -m 644 examples/profiles/*.json examples/profiles/README $(DESTDIR)$(DATADIR)/qmigrate/profiles/
	install -m 644 examples/qmigrate-agent.service $(DESTDIR)$(DATADIR)/qmigrate/examples/
	[ -n "$(DESTDIR)" ] || sh tools/deps.sh --user

uninstall:
	rm -f $(DESTDIR)$(LIBDIR)/$(STATIC_LIB) $(DESTDIR)$(LIBDIR)/$(SHARED_LIB) \
		$(DESTDIR)$(LIBDIR)/libqmigrate.so $(DESTDIR)$(LIBDIR)/pkgconfig/libqmigrate.pc \
		$(DESTDIR)$(BINDIR)/qmigrate
	rm -rf $(DESTDIR)$(INCLUDEDIR)/qmigrate $(DESTDIR)$(DATADIR)/qmigrate
	for m in $(MAN_PAGES); do rm -f $(DESTDIR)$(MANPREFIX)/man1/$$(basename $$m); done
	for m in docs/qmigrate.3 $(MAN3_PAGES); do rm -f $(DESTDIR)$(MANPREFIX)/man3/$$(basename $$m); done

clean:
	rm -rf build $(STATIC_LIB) $(SHARED_LIB) libqmigrate.so libqmigrate.pc $(TOOL) \
		$(GUEST_CLEAN)

-include $(shell find build -name '*.d' 2>/dev/null)
