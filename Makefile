# Two commands set everything up on a fresh machine:
#   make test   -- virtual environment, package and test dependencies, then the test suite
#   make demo   -- the same set-up, then the end-to-end job on generated data
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The torch build that installs on these machines; pyproject.toml itself accepts a range.
TORCH_PINS := torch==2.14.1 torchvision==0.29.1
STAMP := $(VENV)/.installed

.PHONY: install test demo bench clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH_PINS)
	$(PY) -m pip install --quiet -e '.[test]' $(TORCH_PINS)
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -q

demo: $(STAMP)
	$(PY) -m ganmetrics.demo

bench: $(STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) demo *.egg-info
