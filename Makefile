# Build, run, test and benchmark the KV store.
#   make            build every binary into bin/
#   make run        start a local cluster (nginx on 127.0.0.1:8000)
#   make test       unit + integration tests; ends with "N passed, N failed"
#   make bench      wrk against the real cluster; writes reports/bench.json
#   make test SAN=address,undefined   the same under sanitizers
#   make test-docker  docker-compose.yml end to end (tests/docker)
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

LIB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lib/*.c))
# The CloudCart lab (lab/README.md): one archive, so each program links only
# the lab objects it calls (kv-store the heartbeat, kvctl the grader, ...).
LAB_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(wildcard lab/*.c))
UNIT_SRC := $(wildcard tests/unit/test_*.c)
UNIT_BIN := $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(UNIT_SRC))
# Modules of the programs that unit tests may call directly (not main.c).
MOD_OBJ := $(patsubst %.c,$(BUILD)/%.o,$(filter-out %/main.c,$(wildcard store/*.c queue/*.c api/*.c controller/*.c cli/*.c)))

.PHONY: all run test unit bench deps clean test-docker
all: $(BUILD)/.deps-ok $(PROGS:%=$(BUILD)/bin/%) $(UNIT_BIN)
	@ln -sfn $(BUILD)/bin bin

$(BUILD)/.deps-ok: scripts/deps.sh
	@sh scripts/deps.sh
	@mkdir -p $(@D) && touch $@

$(BUILD)/%.o: %.c | $(BUILD)/.deps-ok
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/libkv.a: $(LIB_OBJ)
	$(AR) rcs $@ $^

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

bench: all
	$(PYTHON) tests/bench/bench.py
	$(PYTHON) tests/bench/reshard.py

clean:
	rm -rf build bin

-include $(shell find build -name '*.d' 2>/dev/null)
