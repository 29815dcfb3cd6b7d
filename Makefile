# ketenbus build. `make` builds into build/, `make test` runs every Check suite,
# `make demo` plays the seed story on loopback. `make deps` installs the Debian
# packages everything needs (apt-get, as root; quick when all are present).
#
#   make [SANITIZE=1]        build (SANITIZE=1: ASan+UBSan, into build/san/)
#   make test [SANITIZE=1]   unit and integration tests
#   make demo                the seed story, end to end
#   make install PREFIX=/usr/local DESTDIR=
#   make fuzz | bench | soak separate long runs (see README)

PREFIX  ?= /usr/local
DESTDIR ?=

# Debian 12 packages for building, testing and the demo.
DEB_PKGS := build-essential pkg-config libzmq3-dev libczmq-dev libsodium-dev \
            libprotobuf-c-dev protobuf-c-compiler libleveldb-dev libssl-dev \
            libyaml-dev libjson-c-dev check libsubunit-dev python3 valgrind
# headless Chromium renders the HTML audit report in tests/integration/check_report.c
DEB_PKGS += chromium

ifeq ($(SANITIZE),1)
BUILD    := build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
OPT      := -O1
else
BUILD    := build
SANFLAGS :=
OPT      := -O2
endif

# LevelDB in Debian 12 ships no .pc file: use it when present, else plain -lleveldb.
PC_MODS   := libzmq libczmq libprotobuf-c libcrypto yaml-0.1 json-c
PC_CFLAGS  = $(shell pkg-config --cflags $(PC_MODS) 2>/dev/null)
PC_LIBS    = $(shell pkg-config --libs $(PC_MODS) 2>/dev/null) \
             $(shell pkg-config --libs leveldb 2>/dev/null || echo -lleveldb)
CHECK_LIBS = $(shell pkg-config --libs check 2>/dev/null)

CC      ?= cc
# V=1 shows whole command lines.
ifeq ($(V),1)
Q :=
else
Q := @
endif
WARN    := -Wall -Wextra -Wshadow -Wformat=2 -Werror
CFLAGS  ?= $(OPT) -g
CPPFLAGS_ALL := -std=c11 -D_GNU_SOURCE -D_FORTIFY_SOURCE=2 -Iinclude -Ilib -I$(BUILD)/gen \
                -Ibroker -Iadapters/sdk $(PC_CFLAGS)
ALL_CFLAGS = $(CPPFLAGS_ALL) $(WARN) $(CFLAGS) $(SANFLAGS) -fPIC -pthread
ALL_LDFLAGS = $(SANFLAGS) -pthread $(LDFLAGS)

GEN_C   := $(BUILD)/gen/ketenbus.pb-c.c
GEN_H   := $(BUILD)/gen/ketenbus.pb-c.h

LIB_SRC    := $(wildcard lib/*.c)
SDK_SRC    := $(wildcard adapters/sdk/*.c)
BROKER_SRC := $(filter-out broker/main.c,$(wildcard broker/*.c))
CLI_SRC    := $(wildcard ops/cli/*.c)

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ    := $(call obj,$(LIB_SRC)) $(BUILD)/obj/gen/ketenbus.pb-c.o
SDK_OBJ    := $(call obj,$(SDK_SRC))
BROKER_OBJ := $(call obj,$(BROKER_SRC))
CLI_OBJ    := $(call obj,$(CLI_SRC))
# the CLI's modules without its main(), so tests can call them (report_html, ...)
CLI_LIB_OBJ := $(filter-out $(BUILD)/obj/ops/cli/main.o,$(CLI_OBJ))

UNIT_SRC   := $(wildcard tests/unit/check_*.c)
INTEG_SRC  := $(wildcard tests/integration/check_*.c)
ifeq ($(SANITIZE),1)
# valgrind and ASan do not mix; the sanitized run checks memory on its own
INTEG_SRC  := $(filter-out tests/integration/check_valgrind.c,$(INTEG_SRC))
endif
TEST_HELP  := $(call obj,$(wildcard tests/support/*.c))
UNIT_BIN   := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
INTEG_BIN  := $(patsubst tests/integration/%.c,$(BUILD)/tests/%,$(INTEG_SRC))

BINS := $(BUILD)/ketenbusd $(BUILD)/ketenbus
LIBS := $(BUILD)/libketenbus.a $(BUILD)/libketenbus.so $(BUILD)/libkbinternal.a

.PHONY: all deps deps-fuzz test unit integration demo install clean fuzz bench bench-peers deps-peers
.DEFAULT_GOAL := all
# keep objects make would otherwise treat as intermediate (tests/support)
.SECONDARY:

all: deps $(BINS) $(LIBS) $(BUILD)/ketenbus.pc

# Installs only what is missing; needs root (or sudo) only then.
deps:
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make deps: missing$$missing; run 'make deps' as root" >&2; exit 1; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(GEN_C) $(GEN_H): proto/ketenbus.proto | deps
	@mkdir -p $(BUILD)/gen
	protoc-c --proto_path=proto --c_out=$(BUILD)/gen proto/ketenbus.proto

$(BUILD)/obj/gen/ketenbus.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(CPPFLAGS_ALL) $(CFLAGS) $(SANFLAGS) -fPIC -c $< -o $@

$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(ALL_CFLAGS) -MMD -MP -c $< -o $@

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# libketenbus: the adapter SDK with the shared code it needs.
$(BUILD)/libketenbus.a: $(LIB_OBJ) $(SDK_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

$(BUILD)/libketenbus.so: $(LIB_OBJ) $(SDK_OBJ)
	@echo "  LD      $@"
	$(Q)$(CC) -shared -Wl,-soname,libketenbus.so.0 -o $@ $^ $(ALL_LDFLAGS) $(PC_LIBS)

# Everything but main()s, for the tests and the tools.
$(BUILD)/libkbinternal.a: $(LIB_OBJ) $(SDK_OBJ) $(BROKER_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

$(BUILD)/ketenbusd: $(BUILD)/obj/broker/main.o $(BUILD)/libkbinternal.a
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_LIBS)

$(BUILD)/ketenbus: $(CLI_OBJ) $(BUILD)/libkbinternal.a
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support -Iops/cli -o $@ $< $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) $(PC_LIBS) $(CHECK_LIBS)

$(BUILD)/libkbcli.a: $(CLI_LIB_OBJ)
	@rm -f $@
	@echo "  AR      $@"
	$(Q)ar rcs $@ $^

$(BUILD)/tests/%: tests/integration/%.c $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support -Iops/cli -o $@ $< $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) $(PC_LIBS) $(CHECK_LIBS)

# disk faults that some tests preload into the broker or into themselves
# (tests/support/faults/kb_faults.c); built without sanitizers
FAULTS_SO := $(BUILD)/tests/libkbfaults.so
$(FAULTS_SO): tests/support/faults/kb_faults.c
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(WARN) $(CFLAGS) -fPIC -shared -o $@ $< -ldl

# pkg-config file for PREFIX; `make install` writes it again for its own PREFIX.
define KB_PC_TEXT
prefix=$(1)
libdir=$${prefix}/lib
includedir=$${prefix}/include

Name: ketenbus
Description: adapter SDK of the ketenbus information-exchange bus
Version: 0.1.0
Requires.private: libzmq libczmq libprotobuf-c libcrypto json-c yaml-0.1
Libs: -L$${libdir} -lketenbus
Libs.private: -lleveldb -pthread
Cflags: -I$${includedir}
endef

export KB_PC_INSTALL = $(call KB_PC_TEXT,$(PREFIX))

$(BUILD)/ketenbus.pc: Makefile
	@mkdir -p $(BUILD)
	@printf '%s\n' "$$KB_PC_INSTALL" > $@

test: all $(UNIT_BIN) $(INTEG_BIN) $(FAULTS_SO)
	@KB_BUILD=$(abspath $(BUILD)) tests/run-tests.sh $(UNIT_BIN) $(INTEG_BIN)

unit: all $(UNIT_BIN) $(FAULTS_SO)
	@KB_BUILD=$(abspath $(BUILD)) tests/run-tests.sh $(UNIT_BIN)

integration: all $(INTEG_BIN) $(FAULTS_SO)
	@KB_BUILD=$(abspath $(BUILD)) tests/run-tests.sh $(INTEG_BIN)

demo: all
	@KB_BUILD=$(abspath $(BUILD)) ops/demo/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 0755 $(BUILD)/ketenbusd $(BUILD)/ketenbus $(DESTDIR)$(PREFIX)/bin/
	install -m 0644 $(BUILD)/libketenbus.a $(DESTDIR)$(PREFIX)/lib/
	install -m 0755 $(BUILD)/libketenbus.so $(DESTDIR)$(PREFIX)/lib/libketenbus.so.0
	ln -sf libketenbus.so.0 $(DESTDIR)$(PREFIX)/lib/libketenbus.so
	install -m 0644 include/ketenbus.h $(DESTDIR)$(PREFIX)/include/
	printf '%s\n' "$$KB_PC_INSTALL" > $(DESTDIR)$(PREFIX)/lib/pkgconfig/ketenbus.pc

# Benchmarks (tests/bench/, see README "Benchmarks"): `make bench` prints one
# table of ketenbusd against this machine's ceilings; BENCH_QUICK=1 keeps it
# under two minutes. `make bench-peers` adds RabbitMQ and NATS JetStream from
# Debian, installed on demand, on the same workload. Not part of `make test`.
BENCH_QUICK ?=
BENCH_ARGS  ?=
BENCH_SRC := tests/bench/bench.c tests/bench/bench_ceiling.c tests/bench/bench_chain.c \
             tests/bench/bench_pool.c tests/bench/bench_sdk.c tests/bench/bench_store.c \
             tests/bench/bench_wire.c
BENCH_OBJ := $(call obj,$(BENCH_SRC))
PEER_PKGS := rabbitmq-server nats-server librabbitmq-dev libnats-dev

$(BUILD)/ketenbus-bench: $(BENCH_OBJ) $(BUILD)/libkbinternal.a
	@echo "  LD      $@"
	$(Q)$(CC) -o $@ $^ $(ALL_LDFLAGS) $(PC_LIBS) -lm

bench: all $(BUILD)/ketenbus-bench
	@$(BUILD)/ketenbus-bench --build $(BUILD) $(if $(filter 1,$(BENCH_QUICK)),--quick) $(BENCH_ARGS)

deps-peers: deps
	@missing=""; for p in $(PEER_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps-peers: installing$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO=sudo; \
	  else echo "make deps-peers: missing$$missing; run it as root" >&2; exit 1; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

$(BUILD)/bench/peer_rabbitmq: tests/bench/peer_rabbitmq.c tests/bench/peer_common.h | deps-peers
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(WARN) $(CFLAGS) -std=c11 -D_GNU_SOURCE -o $@ $< $$(pkg-config --cflags --libs librabbitmq)

$(BUILD)/bench/peer_nats: tests/bench/peer_nats.c tests/bench/peer_common.h | deps-peers
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(WARN) $(CFLAGS) -std=c11 -D_GNU_SOURCE -o $@ $< $$(pkg-config --cflags --libs libnats)

bench-peers: all deps-peers $(BUILD)/ketenbus-bench $(BUILD)/bench/peer_rabbitmq $(BUILD)/bench/peer_nats
	@KB_BUILD=$(abspath $(BUILD)) BENCH_QUICK=$(BENCH_QUICK) tests/bench/peers.sh

# `make bench-policy`: decisions per second of the sharing rules engine with
# 10 and 10,000 rules (tests/bench/bench_policy.c). Not part of `make test`.
.PHONY: bench-policy
$(BUILD)/bench/bench_policy: tests/bench/bench_policy.c $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) $(PC_LIBS)

bench-policy: all $(BUILD)/bench/bench_policy
	@$(BUILD)/bench/bench_policy

# Coverage-guided fuzzing with libFuzzer (clang) of the frame decoder and
# envelope validator, and of the chain file parser. FUZZ_SECONDS per
# target; the corpora are kept in build/fuzz/ (the chain file's starts from
# the example).
FUZZ_SECONDS ?= 60
FUZZ_PKGS := clang libclang-rt-14-dev

deps-fuzz: deps
	@missing=""; for p in $(FUZZ_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO=sudo; fi; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; \
	fi

build/fuzz/fuzz_frame: tests/fuzz/fuzz_frame.c lib/kb_codec.c lib/kb_error.c lib/kb_seal.c lib/kb_util.c $(GEN_C) | deps-fuzz
	@mkdir -p build/fuzz/corpus
	clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -I$(BUILD)/gen \
	  $(filter %.c,$^) -o $@ $(shell pkg-config --libs libprotobuf-c libcrypto)

build/fuzz/fuzz_conf: tests/fuzz/fuzz_conf.c broker/conf.c broker/policy.c $(LIB_SRC) $(GEN_C) | deps-fuzz
	@mkdir -p build/fuzz/corpus-conf
	@cp -n ops/examples/chain.yaml build/fuzz/corpus-conf/
	clang -g -O1 -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Iinclude -Ilib -Ibroker -I$(BUILD)/gen \
	  $(filter %.c,$^) -o $@ $(shell pkg-config --libs libprotobuf-c libcrypto yaml-0.1 json-c libzmq)

fuzz: build/fuzz/fuzz_frame build/fuzz/fuzz_conf
	build/fuzz/fuzz_frame -max_total_time=$(FUZZ_SECONDS) -max_len=65536 build/fuzz/corpus
	build/fuzz/fuzz_conf -max_total_time=$(FUZZ_SECONDS) -max_len=16384 build/fuzz/corpus-conf

# A long run of the real broker under load with kill -9, reloads and agencies
# going offline (tests/soak/check_soak.c); SOAK_SECONDS of load at SOAK_RATE
# messages per second, the broker killed every SOAK_KILL_EVERY seconds.
SOAK_SECONDS    ?= 600
SOAK_RATE       ?= 200
SOAK_KILL_EVERY ?= 67
.PHONY: soak
soak: all $(BUILD)/tests/soak/check_soak
	@KB_BUILD=$(abspath $(BUILD)) SOAK_SECONDS=$(SOAK_SECONDS) SOAK_RATE=$(SOAK_RATE) \
	  SOAK_KILL_EVERY=$(SOAK_KILL_EVERY) $(BUILD)/tests/soak/check_soak

$(BUILD)/tests/soak/%: tests/soak/%.c $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Itests/support -Iops/cli -o $@ $< $(TEST_HELP) $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) $(PC_LIBS) $(CHECK_LIBS)

# Figures of the audit log's Merkle tree (tests/bench/bench_merkle.c):
# appends/s in memory and in LevelDB, leaf hashes verified/s. BENCH_LEAVES
# leaves (default 1000000); scratch files under $TMPDIR.
BENCH_LEAVES ?= 1000000
.PHONY: bench-merkle
bench-merkle: $(BUILD)/bench/bench_merkle
	$(BUILD)/bench/bench_merkle $(BENCH_LEAVES)

$(BUILD)/bench/bench_merkle: tests/bench/bench_merkle.c $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -o $@ $< $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) $(PC_LIBS)

# Figures of the whole audit log as the broker writes it
# (tests/bench/bench_audit.c): appends, bytes per message, `audit verify`
# records per CPU-second and query latency, at each of BENCH_AUDIT_SIZES
# records (one LevelDB store each, under $TMPDIR). BENCH_AUDIT_ARGS=--keep
# keeps the stores, --markdown prints the table as Markdown.
BENCH_AUDIT_SIZES ?= 1000000 10000000
BENCH_AUDIT_ARGS  ?=
.PHONY: bench-audit
bench-audit: $(BUILD)/bench/bench_audit
	$(BUILD)/bench/bench_audit $(BENCH_AUDIT_ARGS) $(BENCH_AUDIT_SIZES)

$(BUILD)/bench/bench_audit: tests/bench/bench_audit.c $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(GEN_H)
	@mkdir -p $(dir $@)
	@echo "  LD      $@"
	$(Q)$(CC) $(ALL_CFLAGS) -Iops/cli -o $@ $< $(BUILD)/libkbcli.a $(BUILD)/libkbinternal.a $(ALL_LDFLAGS) \
	  -Wl,--wrap=kb_now_us $(PC_LIBS) -lm

clean:
	rm -rf build
