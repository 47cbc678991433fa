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

# Toy data -> a short DCGAN run on the CPU (FID printed at every evaluation) -> samples -> FID
# and IS of the samples. --weights random:0: the standard Inception weights cannot be downloaded
# on this project's machines, so every number here is from an UNCALIBRATED random network.
GM := $(VENV)/bin/ganmetrics
DEMO_METRICS := --weights random:0 --dims 64
demo: $(STAMP)
	rm -rf demo
	$(GM) toy-data demo/data -n 512
	@# One thread: the tiny convolutions are no faster on two, and far slower on a busy machine.
	OMP_NUM_THREADS=1 $(GM) train demo/data --out demo/run --loss nonsaturating --steps 500 --batch-size 64 \
		--ngf 32 --ndf 32 --eval-every 100 --eval-samples 256 --device cpu $(DEMO_METRICS) --no-inception-score
	$(GM) sample demo/run/checkpoint.pt -n 500 -o demo/samples --device cpu
	@# --no-cache: the statistics of demo/data would otherwise be cached outside demo/.
	$(GM) fid demo/data demo/samples --device cpu --quiet --no-cache $(DEMO_METRICS)
	$(GM) is demo/samples --device cpu --quiet --weights random:0

bench: $(STAMP)
	$(PY) bench/bench.py

clean:
	rm -rf $(VENV) demo *.egg-info
