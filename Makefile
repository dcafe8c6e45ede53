# lockscope: build, test, demo and benchmark entry points.
#   make demo   install what is missing, build, record a built-in mount storm, print the report
#   make test   install what is missing, build, run every test (BPF tests need root)
#   make bpf    recompile bpf/*.bpf.c into the embedded object (needs clang and bpftool)
#   make bench  run the benchmarks, write bench/results.json

SWIFT ?= swift
BPF_CLANG ?= clang
BPFTOOL ?= bpftool
APT_PACKAGES := libbpf-dev libelf-dev zlib1g-dev pkg-config
BPF_CFLAGS := -target bpf -O2 -g -D__BPF__ -D__TARGET_ARCH_x86 -Ibpf -fdebug-prefix-map=$(CURDIR)=.
BPF_SOURCES := $(wildcard bpf/*.bpf.c)
BPF_HEADERS := $(wildcard bpf/*.h)
EMBEDDED := Sources/CLockscopeBPF/lockscope_bpf_object.c
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

# The BPF object is compiled once and committed, so `swift build` needs no BPF compiler.
# `bpftool gen object` links it and drops DWARF (BTF stays for CO-RE): the output is byte-for-byte
# reproducible, which lets `make bpf-check` prove the committed object matches bpf/.
bpf: $(EMBEDDED)

$(EMBEDDED): $(BPF_SOURCES) $(BPF_HEADERS) scripts/embed-object.sh
	@mkdir -p .build/bpf
	$(BPF_CLANG) $(BPF_CFLAGS) -c bpf/lockscope.bpf.c -o .build/bpf/lockscope.unlinked.o
	$(BPFTOOL) gen object .build/bpf/lockscope.bpf.o .build/bpf/lockscope.unlinked.o
	scripts/embed-object.sh .build/bpf/lockscope.bpf.o > $@.tmp && mv $@.tmp $@

bpf-check:
	@mkdir -p .build/bpf-check
	@$(BPF_CLANG) $(BPF_CFLAGS) -c bpf/lockscope.bpf.c -o .build/bpf-check/lockscope.unlinked.o
	@$(BPFTOOL) gen object .build/bpf-check/lockscope.bpf.o .build/bpf-check/lockscope.unlinked.o
	@scripts/embed-object.sh .build/bpf-check/lockscope.bpf.o > .build/bpf-check/embedded.c
	@cmp -s .build/bpf-check/embedded.c $(EMBEDDED) || { \
		echo "bpf-check: $(EMBEDDED) is stale relative to bpf/: run 'make bpf' and commit the result" >&2; exit 1; }
	@echo "bpf-check: embedded BPF object matches bpf/"

clean:
	rm -rf .build
