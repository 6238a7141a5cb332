# PromptSpool: `make run` starts the app, `make test` runs the tests; both set up .venv first.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.promptspool-installed

.PHONY: run serve test lint bench package clean
.DEFAULT_GOAL := run

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) bash scripts/bootstrap.sh

run: $(STAMP)
	$(VENV)/bin/promptspool

serve: $(STAMP)
	$(VENV)/bin/promptspool serve

test: $(STAMP)
	$(PY) -m ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy
	QT_QPA_PLATFORM=offscreen $(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports
	$(PY) -m mypy

bench: $(STAMP)
	$(PY) -m bench

package: $(STAMP)
	$(VENV)/bin/pyinstaller packaging/promptspool.spec --distpath dist --workpath build/pyinstaller \
		--noconfirm --log-level WARN
	tar -czf dist/PromptSpool-linux-$(shell uname -m).tar.gz -C dist PromptSpool
	@du -sh dist/PromptSpool dist/PromptSpool-linux-*.tar.gz

clean:
	rm -rf $(VENV) build dist *.egg-info
