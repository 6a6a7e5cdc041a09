# fnbench — the two commands a user needs: `make run` and `make test`.
# Every target creates the virtual environment on a bare machine first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARCH   := $(shell uname -m)

# torch and torchvision are pinned as a pair per architecture (torchvision's compiled ops
# must match torch's). Both pairs satisfy the ranges in pyproject.toml.
# The executorch extra (--runtime executorch) is installed where it was checked beside the pinned
# torch: executorch 1.5.1 with torch 2.14.1 on x86_64. On aarch64 its rows say how to install it.
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
EXTRAS := test,cluster
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
EXTRAS := test,cluster,executorch
endif

STAMP := $(VENV)/.installed

# `make run` measures the `default` suite (the paper's Table 1 and FasterNet-T0 with its three
# headline peers) under the default (tuned) allocator, and the `allocator-sensitivity` suite
# (DWConv and PConv at 96x56x56, FasterNet-T0) again under the system allocator.
# Per target: RUN_BUDGET seconds, stable once the 95% CI is within ±RUN_PRECISION
# (±5%: shared machines rarely settle to the ±2% default of `fnbench run` in a few seconds).
RUN_BUDGET ?= 6
RUN_PRECISION ?= 0.05

.PHONY: install browser allocators run test clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) -e '.[$(EXTRAS)]'
	touch $@

# Headless Chromium for the report's browser test (Debian package; needs root, as CI has).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
	  || echo "chromium could not be installed: the browser test will be skipped"; }

# jemalloc and tcmalloc for `--allocator jemalloc|tcmalloc` and their tests (Debian packages; needs root).
allocators:
	@{ ls /usr/lib/*/libjemalloc.so.2 /usr/lib/*/libtcmalloc_minimal.so.4 >/dev/null 2>&1; } || { \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libjemalloc2 libtcmalloc-minimal4 >/dev/null) \
	  || echo "jemalloc/tcmalloc could not be installed: their tests will be skipped"; }

# The main job: measure this machine's ceilings and the default suite on its CPU, then the report.
run: install
	$(BIN)/fnbench probe --device cpu --out results
	$(BIN)/fnbench run --device cpu --suite default --budget $(RUN_BUDGET) --precision $(RUN_PRECISION) --out results
	$(BIN)/fnbench run --device cpu --suite allocator-sensitivity --allocator system --budget $(RUN_BUDGET) --precision $(RUN_PRECISION) --out results
	$(BIN)/fnbench report results --out reports

# Lint and format are checked first (ruff; configuration in pyproject.toml), then the tests.
test: install browser allocators
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
