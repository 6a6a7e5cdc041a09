# fnbench — the two commands a user needs: `make run` and `make test`.
# Every target creates the virtual environment on a bare machine first.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
ARCH   := $(shell uname -m)

# torch and torchvision are pinned as a pair per architecture (torchvision's compiled ops
# must match torch's). Both pairs satisfy the ranges in pyproject.toml.
ifeq ($(ARCH),aarch64)
TORCH_PINS := torch==2.9.1 torchvision==0.24.1
else
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
endif

STAMP := $(VENV)/.installed

.PHONY: install run test clean

install: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PINS) -e '.[test]'
	touch $@

# The main job: the default suite on this machine's CPU, then the report.
run: install
	$(BIN)/fnbench count pconv --shape 96x56x56

test: install
	$(BIN)/python -m pytest -q tests

clean:
	rm -rf $(VENV) build *.egg-info
