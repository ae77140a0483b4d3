# Dify Relay: `make local` runs the relay on localhost, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
READY := $(VENV)/.ready
PORT ?= 3000
export SAM_CLI_TELEMETRY := 0
# Where pyenv is used, `sam build` needs python3.13 on PATH beside the default python3.
SAM_PYENV := 3.11.7:3.13.0

# The security checks live in a virtualenv of their own: checkov pins an older boto3 than .venv's tools.
AUDIT_VENV := .venv-audit
AUDIT_BIN := $(AUDIT_VENV)/bin
AUDIT_READY := $(AUDIT_VENV)/.ready
AUDIT_DIR := .aws-sam/audit

PIP_INSTALL = python -m pip install --quiet --disable-pip-version-check --require-hashes

.PHONY: local test lint pytest chromium template audit workflows build build-check lock clean bench

# Every requirements file is locked with the hashes PyPI serves, so pip refuses any other file.
$(READY): requirements/dev.txt layers/deps/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/$(PIP_INSTALL) -r requirements/dev.txt
	touch $@

$(AUDIT_READY): requirements/audit.txt
	rm -rf $(AUDIT_VENV)
	$(PYTHON) -m venv $(AUDIT_VENV)
	echo '*' > $(AUDIT_VENV)/.gitignore
	$(AUDIT_BIN)/$(PIP_INSTALL) -r requirements/audit.txt
	touch $@

local: $(READY)
	PORT=$(PORT) $(BIN)/python -m local.server

test: lint pytest template audit workflows build-check

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: $(READY) chromium
	$(BIN)/pytest

# tests/browser drives the system's Chromium through playwright. Where it is missing and apt-get may
# install it (root on Debian, as on the CI machines here), it is installed; elsewhere install the
# chromium package yourself, or the browser tests fail saying so.
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
		else \
			echo "make test: no Chromium found; tests/browser needs the chromium package"; \
		fi; \
	fi

template: $(READY)
	$(BIN)/cfn-lint template.yaml
	$(BIN)/sam validate --lint

# checkov reads the template as CloudFormation deploys it. On template.yaml itself it sees the
# AWS::Serverless::* resources only; the API stage, the Lambda permissions and the rest that SAM's
# transform generates would go unchecked. So SAM's own translator (samtranslator, in .venv, as
# `sam validate` uses it) expands the template first, and checkov scans the result with the skip
# list in .checkov.yaml. bandit scans the relay's code and the local server.
audit: $(READY) $(AUDIT_READY)
	mkdir -p $(AUDIT_DIR)
	AWS_DEFAULT_REGION=us-east-1 $(BIN)/python -c "$$SAM_TRANSFORM" template.yaml > $(AUDIT_DIR)/template.json
	$(AUDIT_BIN)/checkov --config-file .checkov.yaml --file $(AUDIT_DIR)/template.json
	$(AUDIT_BIN)/bandit -r functions local -q

# Local code paths become placeholder S3 URIs, as `sam validate` does before translating.
define SAM_TRANSFORM
import json, logging, sys
from cfnlint.data import Serverless
from cfnlint.helpers import load_resource
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

logging.getLogger("samtranslator").setLevel(logging.ERROR)

class ManagedPolicies:
    def load(self):
        return load_resource(Serverless, "ManagedPolicies.json")

with open(sys.argv[1]) as source:
    template = yaml_parse(source.read())
for resource in template["Resources"].values():
    properties = resource.get("Properties", {})
    for key in ("CodeUri", "ContentUri"):
        if isinstance(properties.get(key), str):
            properties[key] = "s3://placeholder/" + key
json.dump(transform(template, {}, ManagedPolicies()), sys.stdout, indent=1)
endef
export SAM_TRANSFORM

# The GitHub workflows against GitHub's workflow schema (vendored in check-jsonschema) and zizmor's
# security audits (pinned actions, least-privilege permissions, no expressions in scripts), offline.
WORKFLOWS := $(sort $(wildcard .github/workflows/*.yml))
workflows: $(AUDIT_READY)
	$(AUDIT_BIN)/check-jsonschema --builtin-schema vendor.github-workflows $(WORKFLOWS)
	$(AUDIT_BIN)/check-jsonschema --builtin-schema vendor.dependabot .github/dependabot.yml
	$(AUDIT_BIN)/zizmor --offline --no-progress $(WORKFLOWS) .github/dependabot.yml

# Without pyenv (e.g. GitHub's runners) PYENV_VERSION is ignored and python3.13 comes from PATH.
build: $(READY)
	PATH="$(CURDIR)/$(BIN):$$PATH" PYENV_VERSION=$(SAM_PYENV) $(BIN)/sam build

# `make test` runs `sam build` too (seconds) wherever the function's runtime, python3.13, is found;
# without it the build is skipped with a notice, and ci.yml's build step still runs it.
build-check: $(READY)
	@if PYENV_VERSION=$(SAM_PYENV) python3.13 -c "" 2>/dev/null; then \
		$(MAKE) --no-print-directory build; \
	else \
		echo "make test: no python3.13 on PATH, sam build skipped (ci.yml builds with it)"; \
	fi

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
AUDIT_HEADER := Security checks for 'make audit', installed into a virtualenv of their own.
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
	$(call locked,.venv-lock/bin/pip-compile,requirements/audit.in,requirements/audit.txt,$(AUDIT_HEADER))
	rm -rf .venv-lock .venv-lock-layer

clean:
	rm -rf $(VENV) $(AUDIT_VENV) .aws-sam .pytest_cache .ruff_cache

BENCH_ARGS ?=
# Every figure of docs/benchmarks.md against its budget; BENCH_ARGS=--quick for a short smoke run.
bench: $(READY)
	PYENV_VERSION=$(SAM_PYENV) $(BIN)/python bench/run.py $(BENCH_ARGS)
