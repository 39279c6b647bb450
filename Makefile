# Two commands: `make run` starts Lugh, `make test` runs the tests.
# Each creates .venv on first use and reinstalls when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test install system-deps bench clean

run: $(STAMP)
	$(BIN)/lugh run

# Each run keeps its temporary files in a directory of its own (outside any git checkout), so
# another pytest run on the machine, which prunes old /tmp/pytest-of-* directories, can never
# delete this run's database.
test: $(STAMP) system-deps
	@root=$$(mktemp -d -t lugh-tests-XXXXXX); \
	PYTEST_DEBUG_TEMPROOT=$$root $(BIN)/python -m pytest $(PYTEST_ARGS); code=$$?; \
	rm -rf "$$root"; exit $$code

install: $(STAMP)

$(STAMP): pyproject.toml scripts/install.sh
	PYTHON=$(PYTHON) VENV=$(VENV) sh scripts/install.sh
	touch $(STAMP)

system-deps:
	sh scripts/system-deps.sh

clean:
	rm -rf $(VENV) .pytest_cache
