# SPDX-License-Identifier: AGPL-3.0-or-later
# Trestle: one non-recursive GNU Makefile (STYLE.md B10).
#
#   make                      every binary into build/bin/
#   make test                 the README's test command: build, unit tests, integration tests
#   make check                unit tests only (seconds, no network)
#   make integration          black-box tests against real Mosquitto, Redis and the binaries
#   make SANITIZE=address,undefined BUILD=build-asan check integration
#   make fuzz                 libFuzzer targets (clang), run for FUZZ_SECONDS each
#   make bench                throughput/latency/RSS figures, see bench/README.md
#   make lint                 clang-format, banned functions, getenv outside env.c

.DEFAULT_GOAL := all
BUILD    ?= build
CC       ?= cc
CLANG    ?= clang
PYTHON   ?= /usr/bin/python3
SANITIZE ?=
WERROR   ?=
FUZZ_SECONDS ?= 30

PKGS     ?= libmosquitto libuv jansson hiredis libcmark libcurl libwebsockets libstrophe openssl
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN     := -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla \
            -Wno-missing-field-initializers
CFLAGS   ?= -O2 -g
CFLAGS   += -std=c17 -D_POSIX_C_SOURCE=200809L $(WARN) -Icommon $(PKG_CFLAGS) -MMD -MP
LDFLAGS  += -Wl,--as-needed
LDLIBS   += $(PKG_LIBS) -lm
ifneq ($(WERROR),)
CFLAGS   += -Werror
endif
ifneq ($(SANITIZE),)
CFLAGS   += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS  += -fsanitize=$(SANITIZE)
endif

COMMON_SRC := $(wildcard common/*.c)
COMMON_OBJ := $(COMMON_SRC:%.c=$(BUILD)/obj/%.o)
COMMON_LIB := $(BUILD)/libtrestle-common.a

# Every folder under services/ is one binary, trestle-<folder>.
SERVICES := $(notdir $(patsubst %/,%,$(dir $(wildcard services/*/main.c))))
BINS     := $(SERVICES:%=$(BUILD)/bin/trestle-%)

# Service objects except main.o go into a per-service archive that unit tests may link.
define service_rules
$(1)_SRC := $$(wildcard services/$(1)/*.c)
$(1)_OBJ := $$($(1)_SRC:%.c=$(BUILD)/obj/%.o)
$(1)_LIBOBJ := $$(filter-out %/main.o,$$($(1)_OBJ))
$(BUILD)/lib$(1).a: $$($(1)_LIBOBJ)
	@mkdir -p $$(@D)
	rm -f $$@ && ar rcs $$@ $$^ $(BUILD)/obj/.empty.o
$(BUILD)/bin/trestle-$(1): $(BUILD)/obj/services/$(1)/main.o $(BUILD)/lib$(1).a $(COMMON_LIB)
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach s,$(SERVICES),$(eval $(call service_rules,$(s))))

UNIT_SRC  := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/test/%)
STUB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(wildcard tests/stubs/*.c))
TESTBIN_SRC := $(wildcard tests/bin/*.c)
TESTBINS  := $(TESTBIN_SRC:tests/bin/%.c=$(BUILD)/test/%)

.PHONY: all check integration test fuzz fuzz-build bench lint clean demo deps
deps:
	@deploy/deps.sh
all: $(BINS) $(TESTBINS)

$(BUILD)/obj/.empty.o:
	@mkdir -p $(@D)
	echo 'typedef int tr_empty_unit;' | $(CC) -x c -c -o $@ -

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(COMMON_LIB): $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

$(foreach s,$(SERVICES),$(BUILD)/lib$(s).a): $(BUILD)/obj/.empty.o

$(BUILD)/test/test_%: $(BUILD)/obj/tests/unit/test_%.o $(STUB_OBJ) \
		$(foreach s,$(SERVICES),$(BUILD)/lib$(s).a) $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# Helper programs the integration tests and benchmarks run (a raw relay, a load generator...).
$(BUILD)/test/%: $(BUILD)/obj/tests/bin/%.o $(COMMON_LIB)
	@mkdir -p $(@D)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

check: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

integration: all
	TRESTLE_BUILD=$(BUILD) $(PYTHON) -m pytest -q -p no:cacheprovider tests/integration

# The README's test command: installs missing Debian packages first (deploy/deps.sh), so it
# works on a fresh machine; the sub-makes see the freshly installed pkg-config files.
test:
	@deploy/deps.sh
	$(MAKE) all
	$(MAKE) check
	$(MAKE) integration

# libFuzzer: each tests/fuzz/fuzz_X.c links the common sources built with clang.
FUZZ_SRC  := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRC:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_CFLAGS := -std=c17 -D_POSIX_C_SOURCE=200809L -g -O1 -Icommon $(PKG_CFLAGS) \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzz/%: tests/fuzz/%.c $(COMMON_SRC)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -o $@ $^ $(PKG_LIBS) -lm
fuzz-build: $(FUZZ_BINS)
fuzz: $(FUZZ_BINS)
	@set -e; for f in $(FUZZ_BINS); do \
		n=$$(basename $$f); mkdir -p $(BUILD)/fuzz/corpus-$$n; \
		echo "== $$n for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=0 \
			$(BUILD)/fuzz/corpus-$$n tests/fuzz/corpus/$${n#fuzz_} 2>&1 | tail -n 3; \
	done

bench: all
	TRESTLE_BUILD=$(BUILD) $(PYTHON) bench/run.py

demo:
	@deploy/deps.sh
	$(MAKE) all
	TRESTLE_BUILD=$(BUILD) deploy/local/demo.sh

LINT_C := $(shell git ls-files '*.c' '*.h' 2>/dev/null)
BANNED := sprintf|strcpy|strcat|strncpy|strtok|atoi|atol|gets|system|localtime|gmtime
lint:
	clang-format --dry-run --Werror $(LINT_C)
	@! grep -nE '(^|[^_a-z])($(BANNED))\(' $(LINT_C) || { echo "banned function"; exit 1; }
	@! grep -n 'getenv(' $(LINT_C) | grep -v '^common/env.c:' || { echo "getenv outside common/env.c"; exit 1; }
	@echo lint ok

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)
