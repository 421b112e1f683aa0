# Every target creates the virtualenv and installs requirements first, so that a fresh
# machine needs nothing but Python 3.10+ (with venv) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install demo test test-legacy bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -r requirements-dev.txt
	$(PIP) install --quiet --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# Quick DropNet experiment on scikit-learn's embedded digits: Model A, six metrics, 3 seeds.
demo: $(STAMP)
	$(PY) paper_experiments/dropnet/00_demo_digits_model_a.py --out runs/demo --figures figures

# Full suite with Keras 3, then the tests marked `both_keras` again under tf-keras.
test: $(STAMP)
	$(PY) -m pytest -q tests
	TF_USE_LEGACY_KERAS=1 $(PY) -m pytest -q -m both_keras tests

bench: $(STAMP)
	$(PY) bench/bench_iterative_cycle.py
	$(PY) bench/bench_oracle.py

clean:
	rm -rf $(VENV) runs .pytest_cache
