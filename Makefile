# The two commands of the README's Quick start. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --disable-pip-version-check -q -c constraints.txt

.PHONY: demo test test-fast lint typecheck install install-dev clean

$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -U pip
	$(PIP) torch==2.13.0 torchvision==0.28.0
	$(PIP) -e ".[all]"
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PIP) -e ".[dev]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(VENV)/bin/geoseg demo

lint: $(VENV)/.installed-dev
	$(VENV)/bin/ruff check geoseg tests benchmarks
	$(VENV)/bin/ruff format --check geoseg tests benchmarks

typecheck: $(VENV)/.installed-dev
	$(VENV)/bin/mypy geoseg

test: $(VENV)/.installed-dev lint typecheck
	$(VENV)/bin/pytest -q tests

# day-to-day: everything but the tests marked slow (about 2 minutes on 2 cores)
test-fast: $(VENV)/.installed-dev
	$(VENV)/bin/pytest -q -m "not slow" tests

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
