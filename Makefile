# Two commands: `make run` starts Lugh, `make test` runs the tests.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-deps bench clean

run: $(STAMP)
	$(BIN)/lugh run

test: $(STAMP) system-deps
	$(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh
	touch $(STAMP)

system-deps:
	sh scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache
