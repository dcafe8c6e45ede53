# lockscope: build, test, demo and benchmark entry points.
#   make demo   install what is missing, build, record a built-in mount storm, print the report
#   make test   install what is missing, build, run every test (BPF tests need root)
#   make bpf    recompile bpf/*.bpf.c into the embedded skeletons (needs clang and bpftool)
#   make bench  run the benchmarks, write bench/results.json
#   make soak   the agent over many windows under a storm loop: its RSS slope, in bench/soak.json

SWIFT ?= swift
# The clang next to swift, whatever else is on PATH: `make bpf-check` compares bytes, so every machine
# must compile bpf/ with the same compiler (a Debian clang earlier in PATH gives other bytes).
BPF_CLANG ?= $(or $(wildcard $(dir $(realpath $(shell command -v $(SWIFT))))clang),clang)
BPFTOOL ?= bpftool
APT_PACKAGES := libbpf-dev libelf-dev zlib1g-dev pkg-config
BPF_CFLAGS := -target bpf -O2 -g -D__BPF__ -D__TARGET_ARCH_x86 -Ibpf -fdebug-prefix-map=$(CURDIR)=.
BPF_HEADERS := $(wildcard bpf/*.h)
# bpftool skeletons: each embeds its object and gives Swift typed fields for its programs, maps and .rodata.
SKELETON := Sources/CLockscopeBPF/include/lockscope.skel.h
# The benchmark's synthetic event source: a separate object, so the production one stays small.
BENCH_SKELETON := Sources/CLockscopeBPF/include/lockscope_bench.skel.h
# The on-CPU sampler (record --spin-hz): a separate object, loaded only when sampling is on.
SPIN_SKELETON := Sources/CLockscopeBPF/include/lockscope_spin.skel.h
BIN := .build/release/lockscope

.PHONY: all deps build release test demo bpf bpf-check bench soak clean

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

soak: release
	@scripts/soak.sh $(BIN)

# The BPF objects are compiled once and committed as skeletons, so `swift build` needs no BPF compiler.
# `bpftool gen object` links each and drops DWARF (BTF stays for CO-RE), and `bpftool gen skeleton`
# writes no paths or dates: the output is byte-for-byte reproducible, which lets `make bpf-check`
# prove the committed skeletons match bpf/.
bpf: $(SKELETON) $(BENCH_SKELETON) $(SPIN_SKELETON)

# $(call skeleton-bpf,NAME,DIR,OUTPUT): compile bpf/NAME.bpf.c in DIR and write its skeleton (struct NAME_bpf) to OUTPUT.
define skeleton-bpf
$(BPF_CLANG) $(BPF_CFLAGS) -c bpf/$(1).bpf.c -o $(2)/$(1).unlinked.o && \
	$(BPFTOOL) gen object $(2)/$(1).bpf.o $(2)/$(1).unlinked.o && \
	$(BPFTOOL) gen skeleton $(2)/$(1).bpf.o name $(1)_bpf > $(3)
endef

$(SKELETON): bpf/lockscope.bpf.c $(BPF_HEADERS)
	@mkdir -p .build/bpf
	$(call skeleton-bpf,lockscope,.build/bpf,$@.tmp)
	mv $@.tmp $@

$(BENCH_SKELETON): bpf/lockscope_bench.bpf.c $(BPF_HEADERS)
	@mkdir -p .build/bpf
	$(call skeleton-bpf,lockscope_bench,.build/bpf,$@.tmp)
	mv $@.tmp $@

$(SPIN_SKELETON): bpf/lockscope_spin.bpf.c $(BPF_HEADERS)
	@mkdir -p .build/bpf
	$(call skeleton-bpf,lockscope_spin,.build/bpf,$@.tmp)
	mv $@.tmp $@

bpf-check:
	@mkdir -p .build/bpf-check
	@$(call skeleton-bpf,lockscope,.build/bpf-check,.build/bpf-check/lockscope.skel.h)
	@$(call skeleton-bpf,lockscope_bench,.build/bpf-check,.build/bpf-check/lockscope_bench.skel.h)
	@$(call skeleton-bpf,lockscope_spin,.build/bpf-check,.build/bpf-check/lockscope_spin.skel.h)
	@for pair in lockscope.skel.h:$(SKELETON) lockscope_bench.skel.h:$(BENCH_SKELETON) lockscope_spin.skel.h:$(SPIN_SKELETON); do \
		cmp -s .build/bpf-check/$${pair%%:*} $${pair#*:} || { \
			echo "bpf-check: $${pair#*:} is stale relative to bpf/: run 'make bpf' and commit the result" >&2; exit 1; }; \
	done
	@echo "bpf-check: BPF skeletons match bpf/"

clean:
	rm -rf .build
