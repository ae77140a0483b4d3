# Dify Relay: `make local` runs the relay on localhost, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
PORT ?= 3000
export SAM_CLI_TELEMETRY := 0
# Where pyenv is used, `sam build` needs python3.13 on PATH beside the default python3.
SAM_PYENV := 3.11.7:3.13.0

PIP_INSTALL = python -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: local test lint pytest template build lock clean

# Every requirements file is locked with the hashes PyPI serves, so pip refuses any other file.
$(READY): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -r requirements/dev.txt
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

# Resolves requirements/*.in into the hash-locked files, keeping the versions already locked
# (`make lock LOCK_ARGS=--upgrade` moves everything to the newest releases). pip-compile runs in
# throwaway virtualenvs and sees PyPI only, never a local pip.conf's indexes or find-links, so
# every hash is one PyPI serves. The layer is resolved with python3.13, the function's runtime.
PIP_TOOLS := pip-tools==7.6.2
LOCK_ENV := env -u PIP_FIND_LINKS -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null
LOCK_ARGS ?=
COMPILE = --quiet --generate-hashes --allow-unsafe --strip-extras --no-header --no-emit-index-url \
	--index-url https://pypi.org/simple $(LOCK_ARGS)
LAYER_HEADER := Runtime dependencies of the relay function, installed into the layer by 'sam build'.
DEV_HEADER := Development and test tools.
# $(call locked,PIP_COMPILE,IN,OUT,HEADER): compile IN into OUT and put HEADER on top.
define locked
	$(LOCK_ENV) $(1) $(COMPILE) --output-file $(3) $(2)
	{ echo "# $(4)"; echo "# Locked with hashes by 'make lock' from $(2); pip installs it with --require-hashes."; \
	  cat $(3); } > $(3).new && mv $(3).new $(3)
endef

lock:
	rm -rf .venv-lock .venv-lock-layer
	$(PYTHON) -m venv .venv-lock
	PYENV_VERSION=$(SAM_PYENV) python3.13 -m venv .venv-lock-layer
	echo '*' > .venv-lock/.gitignore && echo '*' > .venv-lock-layer/.gitignore
	$(LOCK_ENV) .venv-lock/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	$(LOCK_ENV) .venv-lock-layer/bin/python -m pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	$(call locked,.venv-lock-layer/bin/pip-compile,requirements/layer.in,layers/deps/requirements.txt,$(LAYER_HEADER))
	$(call locked,.venv-lock/bin/pip-compile,requirements/dev.in,requirements/dev.txt,$(DEV_HEADER))
	rm -rf .venv-lock .venv-lock-layer

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
