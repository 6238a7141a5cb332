# PromptSpool: `make run` starts the app, `make test` runs the tests; both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promptspool-installed

.PHONY: run serve test lint bench clean
.DEFAULT_GOAL := run

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh

run: $(STAMP)
	$(VENV)/bin/promptspool

serve: $(STAMP)
	$(VENV)/bin/promptspool serve

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info
