# lockscope: build, test, demo and benchmark entry points.
#   make demo   install what is missing, build, record a built-in mount storm, print the report
#   make test   install what is missing, build, run every test (BPF tests need root)
#   make bpf    recompile bpf/*.bpf.c into the embedded object (needs clang and bpftool)
#   make bench  run the benchmarks, write bench/results.json

SWIFT ?= swift
# The clang next to swift, whatever else is on PATH: `make bpf-check` compares bytes, so every machine
# must compile bpf/ with the same compiler (a Debian clang earlier in PATH gives other bytes).
BPF_CLANG ?= $(or $(wildcard $(dir $(realpath $(shell command -v $(SWIFT))))clang),clang)
BPFTOOL ?= bpftool
APT_PACKAGES := libbpf-dev libelf-dev zlib1g-dev pkg-config
BPF_CFLAGS := -target bpf -O2 -g -D__BPF__ -D__TARGET_ARCH_x86 -Ibpf -fdebug-prefix-map=$(CURDIR)=.
BPF_HEADERS := $(wildcard bpf/*.h)
EMBEDDED := Sources/CLockscopeBPF/lockscope_bpf_object.c
# The benchmark's synthetic event source: a separate object, so the production one stays small.
BENCH_EMBEDDED := Sources/CLockscopeBPF/lockscope_bench_object.c
# The on-CPU sampler (record --spin-hz): a separate object, loaded only when sampling is on.
SPIN_EMBEDDED := Sources/CLockscopeBPF/lockscope_spin_object.c
BIN := .build/release/lockscope

.PHONY: all deps build release test demo bpf bpf-check bench clean

all: release

# Install the system packages the build needs, when they are missing (Debian/Ubuntu).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(SWIFT) build

release: deps
	$(SWIFT) build -c release

test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

demo: release
	@scripts/demo.sh $(BIN)

bench: release
	@scripts/bench.sh $(BIN)

# The BPF objects are compiled once and committed, so `swift build` needs no BPF compiler.
# `bpftool gen object` links each and drops DWARF (BTF stays for CO-RE): the output is byte-for-byte
# reproducible, which lets `make bpf-check` prove the committed objects match bpf/.
bpf: $(EMBEDDED) $(BENCH_EMBEDDED) $(SPIN_EMBEDDED)

# $(call embed-bpf,NAME,SYMBOL,DIR,OUTPUT): compile bpf/NAME.bpf.c in DIR and embed it in OUTPUT as SYMBOL_bytes()/_size().
define embed-bpf
$(BPF_CLANG) $(BPF_CFLAGS) -c bpf/$(1).bpf.c -o $(3)/$(1).unlinked.o && \
	$(BPFTOOL) gen object $(3)/$(1).bpf.o $(3)/$(1).unlinked.o && \
	scripts/embed-object.sh $(3)/$(1).bpf.o $(2) > $(4)
endef

$(EMBEDDED): bpf/lockscope.bpf.c $(BPF_HEADERS) scripts/embed-object.sh
	@mkdir -p .build/bpf
	$(call embed-bpf,lockscope,lockscope_bpf_object,.build/bpf,$@.tmp)
	mv $@.tmp $@

$(BENCH_EMBEDDED): bpf/lockscope_bench.bpf.c $(BPF_HEADERS) scripts/embed-object.sh
	@mkdir -p .build/bpf
	$(call embed-bpf,lockscope_bench,lockscope_bench_object,.build/bpf,$@.tmp)
	mv $@.tmp $@

$(SPIN_EMBEDDED): bpf/lockscope_spin.bpf.c $(BPF_HEADERS) scripts/embed-object.sh
	@mkdir -p .build/bpf
	$(call embed-bpf,lockscope_spin,lockscope_spin_object,.build/bpf,$@.tmp)
	mv $@.tmp $@

bpf-check:
	@mkdir -p .build/bpf-check
	@$(call embed-bpf,lockscope,lockscope_bpf_object,.build/bpf-check,.build/bpf-check/lockscope.c)
	@$(call embed-bpf,lockscope_bench,lockscope_bench_object,.build/bpf-check,.build/bpf-check/lockscope_bench.c)
	@$(call embed-bpf,lockscope_spin,lockscope_spin_object,.build/bpf-check,.build/bpf-check/lockscope_spin.c)
	@for pair in lockscope.c:$(EMBEDDED) lockscope_bench.c:$(BENCH_EMBEDDED) lockscope_spin.c:$(SPIN_EMBEDDED); do \
		cmp -s .build/bpf-check/$${pair%%:*} $${pair#*:} || { \
			echo "bpf-check: $${pair#*:} is stale relative to bpf/: run 'make bpf' and commit the result" >&2; exit 1; }; \
	done
	@echo "bpf-check: embedded BPF objects match bpf/"

clean:
	rm -rf .build
