# Two commands: `make run` starts Lugh, `make test` runs the tests.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-deps bench clean

run: $(STAMP)
	$(BIN)/lugh run

# The tests' temporary files live in the checkout, so another pytest run on the same machine
# (which prunes old /tmp/pytest-of-* directories) can never delete this run's database.
test: $(STAMP) system-deps
	mkdir -p .pytest-tmp
	PYTEST_DEBUG_TEMPROOT=$(CURDIR)/.pytest-tmp $(BIN)/python -m pytest $(PYTEST_ARGS)

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh
	touch $(STAMP)

system-deps:
	sh scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache .pytest-tmp
