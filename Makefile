# Two commands matter: `make test` and `make devnet`. Both set up everything first;
# setting up twice is a no-op (stamp files track what each step was built from).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP_STAMP := $(VENV)/.stamp-pip
NPM_STAMP := node_modules/.stamp-npm
# Debian packages the tests need (chromium + chromium-driver for the dashboard's browser tests,
# promtool for the alert rules), installed only when missing; CI runs as root.
SYSTEM_STAMP := build/.stamp-system-packages
NATIVE_SOURCES := $(wildcard native/*/*.c native/*/*.h native/*/build_ffi.py)

.PHONY: setup system-packages test devnet bench bench-risk typecheck sanitize clean

setup: $(PIP_STAMP) $(NPM_STAMP)
	@# tests/netns puts each node in its own network namespace with iproute2's `ip` (as root).
	@command -v ip >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq iproute2; }

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip==25.3"

# Editable install: compiles the C kernels in place through setup.py's cffi hook.
$(PIP_STAMP): $(PY) pyproject.toml setup.py requirements.lock $(NATIVE_SOURCES)
	$(PY) -m pip install --quiet --constraint requirements.lock --editable '.[test]'
	touch $@

$(NPM_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

system-packages: $(SYSTEM_STAMP)

$(SYSTEM_STAMP): ops/system-packages.sh
	bash ops/system-packages.sh build/tools
	@mkdir -p $(@D) && touch $@

test: setup $(SYSTEM_STAMP)
	$(VENV)/bin/pytest

devnet: setup
	$(VENV)/bin/crossclear devnet up

bench: setup
	$(VENV)/bin/crossclear bench margin --json

# Risk v2 and the volatility forecasters (docs/risk-v2.md, docs/forecast.md): the ES kernel
# against numpy, backtest throughput, forecaster fits, one against two Dask workers. About
# five minutes on this 2-core machine; run it when nothing else does (the Dask figure needs
# the second core).
bench-risk: setup
	$(VENV)/bin/crossclear bench risk --json

typecheck: setup
	$(VENV)/bin/mypy

# The BN254 verifier built with AddressSanitizer + UBSan, then its differential and
# real-proof tests run against that build (tests/native_bn254 runs this target once).
# PYTHONMALLOC=malloc gives every Python buffer its own allocation, so reading past the end
# of one is caught too. Leak checking is off: the interpreter never frees everything.
SANITIZE_DIR := $(CURDIR)/build/sanitize
sanitize: setup
	$(PY) native/bn254/build_ffi.py --sanitize --build-dir $(SANITIZE_DIR)/bn254 >/dev/null
	CROSSCLEAR_BN254_EXTENSION=$$(ls $(SANITIZE_DIR)/bn254/crossclear/zk/_bn254*.so) \
	LD_PRELOAD=$$($(CC) -print-file-name=libasan.so) \
	PYTHONMALLOC=malloc ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	$(VENV)/bin/pytest -q -p no:cacheprovider tests/native_bn254 \
		-k "not test_cli_verify_with_the_native_backend and not test_sanitizer_run_is_clean"

clean:
	rm -rf $(VENV) node_modules build node/*.egg-info
	find node -name '*.so' -delete
