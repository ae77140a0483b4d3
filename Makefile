# Dify Relay: `make local` runs the relay on localhost, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
PORT ?= 3000
export SAM_CLI_TELEMETRY := 0
# Where pyenv is used, `sam build` needs python3.13 on PATH beside the default python3.
SAM_PYENV := 3.11.7:3.13.0

.PHONY: local test lint pytest template build lock clean

$(READY): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements/dev.txt
	touch $@

local: $(READY)
	PORT=$(PORT) $(BIN)/python -m local.server

test: lint pytest template

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: $(READY)
	$(BIN)/pytest

template: $(READY)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint

build: $(READY)
	PATH="$(CURDIR)/$(BIN):$$PATH" PYENV_VERSION=$(SAM_PYENV) $(BIN)/sam build

# Re-resolve the pinned development dependencies from requirements/dev.in.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check -r requirements/dev.in
	( echo "# Exact pins resolved from dev.in by 'make lock'."; \
	  .venv-lock/bin/pip freeze --exclude-editable ) > requirements/dev.txt
	rm -rf .venv-lock

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
