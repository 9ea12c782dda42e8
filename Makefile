# Set-up is part of each target: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# modAL-python 0.4.2.1 pins skorch==0.9.0; the compatibility tests run it from a
# separate folder, installed without that pin, beside the default modAL 0.4.1.
MODAL_0421 := $(VENV)/modal-0.4.2.1
STAMP  := $(VENV)/.installed

.PHONY: demo test test-all lint clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(MODAL_0421) "modAL-python==0.4.2.1"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) -m benchmarks.learning_curves --dataset digits --threads 1

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP)
	$(PY) -m pytest -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
