# SPDX-License-Identifier: GPL-2.0
# SO_REUSERPS: build, boot and test the series.  See README.md.
#
#   make          install what is missing, build the patched kernel (gcc,
#                 the one kernel the demo needs), boot it and show
#                 connections being steered by CPU
#   make check    every test: series checks, every commit built, host,
#                 KUnit, kselftests in a 4-vCPU guest on the debug kernel,
#                 the harness's own tests
#   make series-check
#                 before posting: every commit in all three
#                 configurations (prod, off, on), checkpatch, static
#   make bench    SO_REUSERPS against its peers, in one guest boot:
#                 build/bench/results.md and plots
#   make nipa     the selftests as NIPA runs them, through vng, timed
#   make fuzz     the selftests' fuzzer for longer (FUZZ_OPS operations
#                 per CPU, FUZZ_SEED to replay a run), on the debug kernel

H      := $(CURDIR)/harness
BUILD  ?= $(CURDIR)/build
CPUS   ?= 4
# KUnit suites to run at boot (a kunit.filter_glob).
KUNIT_GLOB ?= reuserps*
# make fuzz: operations per CPU, and the seed (default: the time).
FUZZ_OPS  ?= 20000
FUZZ_SEED ?=
# One program of the selftests manifest, e.g. T=so_incoming_cpu.
T      ?=
# make vng CMD='...': a command to run in the guest instead of a shell.
CMD    ?=
export BUILD CPUS KUNIT_GLOB

MANIFEST := $(BUILD)/tests/selftests.manifest

.NOTPARALLEL:
.PHONY: all demo deps tree series series-check static kernel debug-kernel \
	tests kunit nipa \
	selftests host-test harness-test check each-commit bench vng clean sizes \
	fuzz \
	distclean

all: demo

deps:
	$(H)/deps.sh

# build/linux: the base tree with the series applied as commits.
tree: deps
	$(H)/series.py assemble

# build/series: what git am and the mailing list get.
series: deps
	$(H)/series.py format

# b4 am + git am onto a fresh base gives the same tree; checkpatch
# --strict; every commit in every configuration (make check builds each
# in one, and the others once, at the head); then sparse, W=1, clippy and
# kernel-doc (which need the kernel built).
series-check: deps
	$(H)/series.py verify
	$(H)/each-commit.sh --all
	$(MAKE) static

sizes: kernel
	$(H)/struct-sizes.sh

static: kernel
	$(H)/static-check.sh

# The gcc build (build/kbuild: the demo, each-commit, static checks,
# sizes, uapi headers, make bench) and the clang debug build every guest
# ring boots (build/kbuild-debug: harness/kbuild-debug.sh).
kernel: tree
	$(H)/kbuild.sh

debug-kernel: tree
	$(H)/kbuild-debug.sh

tests: kernel
	$(H)/build-tests.sh

kunit: debug-kernel
	$(H)/guest.py --name kunit --kunit '$(KUNIT_GLOB)' --cpus $(CPUS)

selftests: tests debug-kernel
	$(H)/guest.py --name selftests --cpus $(CPUS) --numa \
		--extra $(BUILD)/tests/extra \
		--manifest $(if $(T),$(BUILD)/tests/one.manifest,$(MANIFEST)) \
		$(if $(T),--show-output)

fuzz: tests debug-kernel
	@echo "reuserps_fuzz 3000 $(BUILD)/tests/reuserps/reuserps_fuzz" \
		"-n $(FUZZ_OPS) -s $(if $(FUZZ_SEED),$(FUZZ_SEED),$$(date +%s))" \
		>$(BUILD)/tests/fuzz.manifest
	$(H)/guest.py --name fuzz --cpus $(CPUS) --timeout 3600 \
		--manifest $(BUILD)/tests/fuzz.manifest --show-output

ifneq ($(T),)
selftests: one-manifest
.PHONY: one-manifest
one-manifest: tests
	@grep -E '^$(T) ' $(MANIFEST) >$(BUILD)/tests/one.manifest || \
		{ echo "no program '$(T)' in $(MANIFEST)"; exit 1; }
endif

host-test:
	@if [ -f Cargo.toml ]; then cargo test --release; \
	else echo "host-test: no host crate yet"; fi

harness-test: debug-kernel
	$(H)/test-harness.sh

# Boot the kernel and show where connections land, hash vs SO_REUSERPS.
demo: kernel
	@mkdir -p $(BUILD)/demo
	gcc -static -O2 -Wall -Werror -isystem $(BUILD)/kbuild/usr/include \
		-o $(BUILD)/demo/reuserps_demo $(H)/demo/reuserps_demo.c
	@echo "reuserps_demo 120 $(BUILD)/demo/reuserps_demo" \
		>$(BUILD)/demo/manifest
	$(H)/guest.py --name demo --cpus $(CPUS) \
		--kernel $(BUILD)/kbuild/arch/x86/boot/bzImage \
		--manifest $(BUILD)/demo/manifest --show-output

check:
	$(H)/check.sh

# Numbers, not tests: see harness/bench.sh.
bench: tree
	@mkdir -p $(BUILD)/logs
	$(H)/bench.sh

# Build every commit of the series in turn (each must build on its own):
# as make check does; ALL=1 as make series-check does.
each-commit: deps
	$(H)/each-commit.sh $(if $(ALL),--all)

# The selftests as NIPA runs them: kselftest install, run_kselftest.sh
# with the settings timeout, in vng on the debug kernel; reports the time.
nipa: debug-kernel kernel
	$(H)/nipa.sh

# An interactive guest on the debug kernel (virtme-ng, software emulation).
# vng finds its helpers (virtme-run, virtme-ng-init) on PATH.
vng: debug-kernel
	PATH=$(BUILD)/venv/bin:$$PATH vng --run \
		$(BUILD)/kbuild-debug/arch/x86/boot/bzImage --disable-kvm \
		--cpus $(CPUS) --user root $(if $(CMD),--exec '$(CMD)')

clean:
	rm -rf $(BUILD)/kbuild $(BUILD)/kbuild-off $(BUILD)/kbuild-static \
		$(BUILD)/kbuild-debug $(BUILD)/kbuild-test \
		$(BUILD)/kbuild-base $(BUILD)/kbuild-bench-base \
		$(BUILD)/kbuild-bench-llvm $(BUILD)/kbuild-bench $(BUILD)/tests \
		$(BUILD)/results $(BUILD)/series $(BUILD)/logs $(BUILD)/bench

distclean:
	rm -rf $(BUILD) target
