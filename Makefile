# Build, run, test and benchmark the KV store.
#   make            build every binary into bin/
#   make run        start a local cluster (nginx on 127.0.0.1:8000)
#   make test       unit + integration tests; ends with "N passed, N failed"
#   make bench      wrk against the real cluster; writes reports/bench.json
#   make profile    CPU and system calls per request of each hop (PERF=1: perf)
#   make test SAN=address,undefined   the same under sanitizers
#   make test-docker  docker-compose.yml end to end (tests/docker)
#   make test-swarm   the same on a single-node Docker Swarm (tests/docker)
#   make fuzz       libFuzzer harnesses (tests/fuzz) into build/fuzz, each run
#                   FUZZ_SECONDS (60); make fuzz-smoke: 5 s each (CI)
# Objects live in build/<variant>/; bin/ points at the variant built last.

SAN ?=
comma := ,
VARIANT := $(if $(SAN),san-$(subst $(comma),-,$(SAN)),release)
BUILD := build/$(VARIANT)
PYTHON ?= python3

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -pthread -Ilib -Ilab -MMD -MP \
	-Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
LDLIBS := -lmicrohttpd -lcurl -lcjson -llmdb -lxxhash -lm -pthread
ifneq ($(SAN),)
CFLAGS += -fsanitize=$(SAN) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=$(SAN)
endif

# llhttp, the HTTP/1.1 parser of lib/http1_parse.c: Debian's node-llhttp
# ships it as C sources, compiled here into libkv.a by a rule of their own
# (generated code: without our warning flags; strict mode).
LLHTTP_SRC := /usr/share/llhttp
CFLAGS += -isystem /usr/share/include/llhttp
LLHTTP_OBJ := $(addprefix $(BUILD)/llhttp/,api.o http.o llhttp.o)
LLHTTP_CFLAGS = $(filter-out -W%,$(CFLAGS)) -DLLHTTP_STRICT_MODE=1

PROGS := kv-store kv-queue kv-api kv-controller kvctl
DIR_kv-store := store
DIR_kv-queue := queue
DIR_kv-api := api
DIR_kv-controller := controller
DIR_kvctl := cli

LIB_SRC := $(wildcard lib/*.c)
LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRC))
# The dashboard's files (ui/), embedded as one generated C table
# (lib/ui_static.h) in libkv.a.
UI_FILES := $(sort $(wildcard ui/*))
UI_C := build/gen/ui_files.c
UI_OBJ := $(BUILD)/gen/ui_files.o
# The CloudCart lab (lab/README.md): one archive, so each program links only
# the lab objects it calls (kv-store the heartbeat, kvctl the grader, ...).
LAB_SRC := $(wildcard lab/*.c)
LAB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(LAB_SRC))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# Modules of the programs that unit tests may call directly (not main.c).
MOD_SRC := $(filter-out %/main.c,$(wildcard store/*.c queue/*.c api/*.c controller/*.c cli/*.c))
MOD_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(MOD_SRC))

.PHONY: all run test unit bench profile deps clean test-docker test-swarm fuzz fuzz-smoke
all: $(BUILD)/.deps-ok $(PROGS:%=$(BUILD)/bin/%) $(UNIT_BIN)
	@ln -sfn $(BUILD)/bin bin

$(BUILD)/.deps-ok: scripts/deps.sh tests/browser/package-lock.json
	@sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@

$(BUILD)/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libkv.a: $(LIB_OBJ) $(UI_OBJ)
	$(AR) rcs $@ $^

$(UI_C): $(UI_FILES) scripts/embed.sh
	@mkdir -p $(@D)
	sh scripts/embed.sh $@ $(UI_FILES)
$(UI_OBJ): $(UI_C) | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libkv.a: $(LLHTTP_OBJ)
$(LLHTTP_OBJ): $(BUILD)/llhttp/%.o: | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) $(LLHTTP_CFLAGS) -c -o $@ $(LLHTTP_SRC)/$*.c

# Lab objects also include the program headers they plug into: the
# supervisor (controller), the api call machinery (api), kvctl's options.
$(LAB_OBJ): CFLAGS += -Icontroller -Iapi -Icli
$(BUILD)/liblab.a: $(LAB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

define PROG_RULE
$(BUILD)/bin/$(1): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(DIR_$(1))/*.c)) $(BUILD)/liblab.a $(BUILD)/libkv.a
	@mkdir -p $$(@D)
	$$(CC) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)
endef
$(foreach p,$(PROGS),$(eval $(call PROG_RULE,$(p))))

$(BUILD)/tests/%: tests/unit/%.c $(MOD_OBJ) $(BUILD)/liblab.a $(BUILD)/libkv.a | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	@mkdir -p $(BUILD)/tests/.deps
	$(CC) $(CFLAGS) -MF $(BUILD)/tests/.deps/$(@F).d $(LDFLAGS) -Wno-missing-prototypes -o $@ $(filter-out %.h,$^) $(LDLIBS) -lcmocka

run: all
	bin/kv-controller $(if $(CONFIG),--config $(CONFIG))

test: all
	$(PYTHON) tests/run.py --build $(BUILD)

unit: all
	$(PYTHON) tests/run.py --build $(BUILD) --unit-only

# The compose deployment end to end (DEMO.md as assertions): an image made
# from this build, docker-compose.yml, a Docker engine of its own if none
# runs. Ends with "N passed, N failed".
test-docker: all
	$(PYTHON) tests/docker/run.py --build $(BUILD)

test-swarm: all
	$(PYTHON) tests/docker/swarm.py --build $(BUILD)

bench: all
	$(PYTHON) tests/bench/bench.py
	$(PYTHON) tests/bench/reshard.py

# What each hop costs per request (CPU, system calls; PERF=1: hottest
# functions too), for the chain rows of make bench and their chains.
profile: all
	$(PYTHON) tests/bench/profile.py $(if $(PERF),--perf)

# libFuzzer harnesses (tests/fuzz/README.md): Debian's clang, the same
# sources as above compiled into build/fuzz/obj with the fuzzer's coverage
# and ASan + UBSan, archived like libkv.a / liblab.a so each harness links
# only what it calls. Each runs on a copy of its kept corpus
# (tests/fuzz/corpus/<name>: new inputs land in build/fuzz/corpus, crashes
# in build/fuzz/crashes), with tests/fuzz/<name>.dict when there is one, for
# FUZZ_SECONDS; any crash fails the target.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 60
FUZZ_ARGS ?=
FUZZ := build/fuzz
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS = $(filter-out -O2 -MMD -MP -fsanitize=%,$(CFLAGS)) -O1 -MMD -MP \
	$(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES := $(patsubst tests/fuzz/fuzz_%.c,%,$(FUZZ_SRC))
FUZZ_BIN := $(FUZZ_NAMES:%=$(FUZZ)/fuzz_%)
FUZZ_LIB_OBJ := $(patsubst %.c,$(FUZZ)/obj/%.o,$(LIB_SRC) $(UI_C)) \
	$(addprefix $(FUZZ)/obj/llhttp/,api.o http.o llhttp.o)
FUZZ_LAB_OBJ := $(patsubst %.c,$(FUZZ)/obj/%.o,$(LAB_SRC))
FUZZ_MOD_OBJ := $(patsubst %.c,$(FUZZ)/obj/%.o,$(MOD_SRC))

$(FUZZ)/.deps-ok: scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@

$(FUZZ)/obj/%.o: %.c | $(FUZZ)/.deps-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<

$(FUZZ)/obj/llhttp/%.o: | $(FUZZ)/.deps-ok
	@mkdir -p $(@D)
	$(FUZZ_CC) $(filter-out -W%,$(FUZZ_CFLAGS)) -DLLHTTP_STRICT_MODE=1 -c -o $@ $(LLHTTP_SRC)/$*.c

$(FUZZ_LAB_OBJ): CFLAGS += -Icontroller -Iapi -Icli

$(FUZZ)/libkv.a: $(FUZZ_LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^
$(FUZZ)/liblab.a: $(FUZZ_LAB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^
$(FUZZ)/libmod.a: $(FUZZ_MOD_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# Harnesses see the program headers too (fuzz_batch drives store/sdb.h).
$(FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ)/libmod.a $(FUZZ)/liblab.a $(FUZZ)/libkv.a | $(FUZZ)/.deps-ok
	@mkdir -p $(@D)/.deps
	$(FUZZ_CC) $(FUZZ_CFLAGS) -Istore -Icontroller -Iapi -Icli -MF $(@D)/.deps/$(@F).d \
		-fsanitize=fuzzer -o $@ $(filter-out %.h,$^) $(LDLIBS)

fuzz: $(FUZZ_BIN)
	@set -e; for n in $(FUZZ_NAMES); do \
		rm -rf $(FUZZ)/corpus/$$n; mkdir -p $(FUZZ)/corpus/$$n $(FUZZ)/crashes; \
		cp tests/fuzz/corpus/$$n/* $(FUZZ)/corpus/$$n/ 2>/dev/null || true; \
		echo "fuzz_$$n: $(FUZZ_SECONDS) s on $$(ls $(FUZZ)/corpus/$$n | wc -l) kept inputs"; \
		dict=; [ ! -f tests/fuzz/$$n.dict ] || dict=-dict=tests/fuzz/$$n.dict; \
		$(FUZZ)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(FUZZ)/crashes/$$n- $$dict $(FUZZ_ARGS) \
			$(FUZZ)/corpus/$$n > $(FUZZ)/fuzz_$$n.log 2>&1 || \
			{ tail -n 40 $(FUZZ)/fuzz_$$n.log; echo "fuzz_$$n failed: see $(FUZZ)/fuzz_$$n.log"; exit 1; }; \
		grep -E '^stat::number_of_executed_units' $(FUZZ)/fuzz_$$n.log; \
	done

fuzz-smoke:
	$(MAKE) fuzz FUZZ_SECONDS=5

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
