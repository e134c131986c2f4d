# Two commands set up and run everything: `make demo` and `make test`.
# Both create and fill .venv themselves.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
JOBS   ?= auto

.PHONY: demo test lint test-slow bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## Run the end-to-end flow on the bundled default model.
demo: $(STAMP)
	$(PY) -m sparq demo

## The house rules: the layer contracts (import-linter, pyproject.toml) and ruff.
lint: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/ruff check .

## Run the house rules, then the default test suite (long sweeps excluded).
test: lint
	$(PY) -m pytest -n $(JOBS)

## Run only the long sweeps marked @pytest.mark.slow.
test-slow: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -m slow

## Run every benchmark; each writes JSON to bench/results/.
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build sim_build .pytest_cache
