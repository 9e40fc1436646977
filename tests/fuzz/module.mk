# tests/fuzz/: libFuzzer targets (clang), built with ASan/UBSan against the
# library's sources compiled for fuzzing. `make fuzz` runs each for
# FUZZ_SECONDS on its seed corpus (tests/fuzz/corpus/TARGET, real QEMU 7.2
# traffic) after replaying its regression inputs (tests/fuzz/regress/TARGET);
# `make check` runs each for a few seconds (tests/fuzz/fuzz_smoke.sh), or
# skips them when clang is missing.
FUZZ_TARGETS = qmp_core qmp_reply qmp_schema tls_check trace job_request policy
FUZZ_CC = clang
FUZZ_SECONDS = 60
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_DIR = build/fuzz
FUZZ_BINS = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)
FUZZ_LIB_OBJS = $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
# Sources from tools/ that a target tests.
fuzz_extra_trace = tools/trace.c
fuzz_extra_job_request = tools/job.c
HAVE_FUZZ_CC := $(shell command -v $(FUZZ_CC) 2>/dev/null)

.PHONY: fuzz fuzz-run fuzz-build

$(FUZZ_DIR)/obj/%.o: %.c
	$(quiet) CC-FUZZ $<
	@mkdir -p $(dir $@)
	$(Q)$(FUZZ_CC) $(QMIG_CFLAGS) -Wno-error -O1 -g $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
		-MMD -MP -c -o $@ $<

define FUZZ_LINK
$(FUZZ_DIR)/fuzz_$(1): $(FUZZ_DIR)/obj/tests/fuzz/fuzz_$(1).o \
		$(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(fuzz_extra_$(1))) $(FUZZ_LIB_OBJS)
	$$(quiet) FUZZ-LD $$@
	$$(Q)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $$@ $$^ $$(DEP_LIBS)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call FUZZ_LINK,$(t))))

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	@$(MAKE) --no-print-directory fuzz-run

fuzz-run: fuzz-build
	@sh tests/fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# make check builds the fuzzers when clang is there (tools/deps.sh installs it).
ifneq ($(HAVE_FUZZ_CC),)
check-run: $(FUZZ_BINS)
endif
ITEST_SCRIPTS += tests/fuzz/fuzz_smoke.sh
