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

# Every virtualenv is built by uv, pinned by hash in requirements/bootstrap.txt. The pip that
# `python -m venv` bundles differs from machine to machine (an old one mistakes a locked package's
# extra, boto3[crt], for an unpinned requirement) and only ever installs that one wheel. uv never
# downloads an interpreter: the virtualenvs use $(PYTHON).
UV_VENV := .venv-uv
UV := $(UV_VENV)/bin/uv
export UV
export UV_PYTHON_DOWNLOADS := never
UV_INSTALL = $(UV) pip install --quiet --require-hashes
# The interpreter $(PYTHON) names, as a path: uv would read a bare `python3` as "any Python 3" and may
# prefer one of its own.
PYTHON_EXE = $(shell $(PYTHON) -c 'import sys; print(sys.executable)')

.PHONY: local test lint pytest chromium axe template audit workflows build build-check lock clean bench app \
	python-check setup-check fuzz abuse build-RelayFunction build-StreamFunction build-RelayCodeLayer \
	build-DependenciesLayer

python-check:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
		echo "make: Python 3.11 or newer is needed as '$(PYTHON)'. Install it (Debian/Ubuntu: apt-get install"; \
		echo "      python3 python3-venv; macOS: brew install python@3.13), or name one: make PYTHON=python3.13 ..."; \
		exit 1; }

$(UV): requirements/bootstrap.txt | python-check
	rm -rf $(UV_VENV)
	$(PYTHON) -m venv $(UV_VENV)
	$(UV_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --only-binary :all: \
		--require-hashes -r requirements/bootstrap.txt
	touch $@

# $(call venv,DIR,LOCK): DIR made anew with $(PYTHON) and LOCK installed, every wheel checked by hash.
define venv
	rm -rf $(1)
	$(UV) venv --quiet --python $(PYTHON_EXE) $(1)
	$(UV_INSTALL) --python $(1)/bin/python -r $(2)
	touch $(1)/.ready
endef

$(READY): requirements/dev.txt layers/deps/requirements.txt $(UV)
	$(call venv,$(VENV),requirements/dev.txt)

$(AUDIT_READY): requirements/audit.txt $(UV)
	$(call venv,$(AUDIT_VENV),requirements/audit.txt)

# The set-up as a new machine does it: every lock file installed from nothing, in a directory of its own,
# with no pip or uv cache, against the registry as it is today (newer releases present). The layer is
# installed as the function's runtime needs it (CPython 3.13, manylinux aarch64): a lock that installs only
# on the day it was written, or misses a dependency or a hash, fails here.
SETUP_CHECK_DIR := .setup-check
setup-check:
	rm -rf $(SETUP_CHECK_DIR)
	PIP_NO_CACHE_DIR=1 UV_NO_CACHE=1 $(MAKE) --no-print-directory UV_VENV=$(SETUP_CHECK_DIR)/uv \
		UV=$(SETUP_CHECK_DIR)/uv/bin/uv VENV=$(SETUP_CHECK_DIR)/dev AUDIT_VENV=$(SETUP_CHECK_DIR)/audit \
		$(SETUP_CHECK_DIR)/dev/.ready $(SETUP_CHECK_DIR)/audit/.ready
	UV_NO_CACHE=1 $(SETUP_CHECK_DIR)/uv/bin/uv pip install --quiet --require-hashes --only-binary :all: \
		--python-platform aarch64-manylinux2014 --python-version 3.13 --target $(SETUP_CHECK_DIR)/layer \
		-r layers/deps/requirements.txt
	$(SETUP_CHECK_DIR)/dev/bin/python -c "import aws_lambda_powertools, boto3, moto, pytest, samcli"
	$(SETUP_CHECK_DIR)/audit/bin/checkov --version >/dev/null
	mkdir -p $(SETUP_CHECK_DIR)/npm && cp $(BROWSER_DIR)/package.json $(BROWSER_DIR)/package-lock.json $(SETUP_CHECK_DIR)/npm/
	$(NPM_CI) --prefix $(SETUP_CHECK_DIR)/npm --cache $(abspath $(SETUP_CHECK_DIR))/npm-cache
	test -f $(SETUP_CHECK_DIR)/npm/node_modules/axe-core/axe.min.js
	rm -rf $(SETUP_CHECK_DIR)
	@echo "setup-check: the bootstrap, .venv, .venv-audit, the layer and axe-core install from their locks with no cache"

local: $(READY)
	PORT=$(PORT) $(BIN)/python -m local.server

test: setup-check lint pytest template audit workflows build-check
	@echo "make test: every check passed (set-up, ruff, pytest, template, audit, workflows, sam build)"

lint: $(READY)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# axe-core (npm, pinned with its integrity hash in the lock), injected into the widget's page by the
# browser tests to check its accessibility.
BROWSER_DIR := tests/browser
AXE := $(BROWSER_DIR)/node_modules/axe-core/axe.min.js
NPM_CI := npm ci --no-audit --no-fund --loglevel=error
axe: $(AXE)
$(AXE): $(BROWSER_DIR)/package-lock.json
	$(NPM_CI) --prefix $(BROWSER_DIR)
	touch $@

# One worker per core (tests are independent; each worker has its own Dify simulator); the browser
# tests share one Chromium on one worker.
PYTEST_ARGS ?= -n auto --dist loadgroup
pytest: $(READY) chromium $(AXE)
	$(BIN)/pytest $(PYTEST_ARGS)


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
	$(AUDIT_BIN)/bandit -r functions layers/relay local -q

# Local code paths become placeholder S3 URIs, as `sam validate` does before translating.
define SAM_TRANSFORM
import json, logging, sys
from samtranslator.internal.managed_policies import get_bundled_managed_policy_map
from samtranslator.translator.transform import transform
from samtranslator.yaml_helper import yaml_parse

logging.getLogger("samtranslator").setLevel(logging.ERROR)

class ManagedPolicies:
    def load(self):
        return get_bundled_managed_policy_map("aws")

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

# What `sam build` runs for each function and layer (BuildMethod: makefile, ContextPath: .): the code into
# $(ARTIFACTS_DIR) with its byte-code compiled by python3.13, the runtime's Python. Lambda's /var/task and /opt
# are read-only, so code shipped without .pyc is compiled again on every cold start. unchecked-hash .pyc are
# used whatever the files' times become in the zip. Make runs these in SAM's copy of the resource's directory.
ROOT := $(dir $(abspath $(lastword $(MAKEFILE_LIST))))
PY313 := python3.13
COMPILED = find $(ARTIFACTS_DIR) -name __pycache__ -prune -exec rm -rf {} + && \
	$(PY313) -m compileall -q -j 0 --invalidation-mode unchecked-hash $(ARTIFACTS_DIR)

build-RelayFunction build-StreamFunction:
	cp -Rp . $(ARTIFACTS_DIR)
	$(COMPILED)

build-RelayCodeLayer:
	mkdir -p $(ARTIFACTS_DIR)/python
	cp -Rp relay $(ARTIFACTS_DIR)/python/
	$(COMPILED)

build-DependenciesLayer:
	$(MAKE) --no-print-directory -C $(ROOT) $(UV)
	$(ROOT)$(UV) pip install --quiet --require-hashes --no-deps --only-binary :all: --no-compile \
		--python-platform aarch64-manylinux2014 --python-version 3.13 --target $(ARTIFACTS_DIR)/python \
		-r requirements.txt
	rm -rf $(ARTIFACTS_DIR)/python/bin $(ARTIFACTS_DIR)/python/.lock  # console scripts; uv's lock file
	$(COMPILED)

# `make test` runs `sam build` too (seconds) wherever the function's runtime, python3.13, is found;
# without it the build is skipped with a notice, and ci.yml's build step still runs it.
build-check: $(READY)
	@if PYENV_VERSION=$(SAM_PYENV) python3.13 -c "" 2>/dev/null; then \
		$(MAKE) --no-print-directory build; \
	else \
		echo "make test: no python3.13 on PATH, sam build skipped (ci.yml builds with it)"; \
	fi

# Resolves requirements/*.in into the hash-locked files, keeping the versions already locked
# (`make lock LOCK_ARGS=--upgrade` moves everything to the newest releases). uv resolves against PyPI
# only, never a local index, find-links or uv.toml, so every hash is one PyPI serves. The layer is
# resolved for python3.13, the function's runtime; the tools for 3.11, the oldest Python the Makefile takes.
LOCK_ENV := env -u UV_INDEX_URL -u UV_EXTRA_INDEX_URL -u UV_DEFAULT_INDEX -u UV_INDEX -u UV_FIND_LINKS UV_NO_CONFIG=1
LOCK_ARGS ?=
COMPILE = --quiet --generate-hashes --no-header --index-url https://pypi.org/simple $(LOCK_ARGS)
BOOTSTRAP_HEADER := The installer of every virtualenv the Makefile makes; the pip that 'python -m venv' bundles installs only this.
LAYER_HEADER := Runtime dependencies of the relay function, installed into the layer by 'sam build'.
DEV_HEADER := Development and test tools.
AUDIT_HEADER := Security checks for 'make audit', installed into a virtualenv of their own.
# $(call locked,PYTHON_VERSION,IN,OUT,HEADER): compile IN into OUT and put HEADER on top.
define locked
	$(LOCK_ENV) $(UV) pip compile $(COMPILE) --python-version $(1) --output-file $(3) $(2)
	{ echo "# $(4)"; echo "# Locked with hashes by 'make lock' from $(2); every install checks these hashes."; \
	  cat $(3); } > $(3).new && mv $(3).new $(3)
endef

lock: $(UV)
	$(call locked,3.11,requirements/bootstrap.in,requirements/bootstrap.txt,$(BOOTSTRAP_HEADER))
	$(call locked,3.13,requirements/layer.in,layers/deps/requirements.txt,$(LAYER_HEADER))
	$(call locked,3.11,requirements/dev.in,requirements/dev.txt,$(DEV_HEADER))
	$(call locked,3.11,requirements/audit.in,requirements/audit.txt,$(AUDIT_HEADER))

# The abuse scripts against `make local` (bench/abuse.py) and the 5,000-turn load test (bench/load.py),
# with the figures docs/security.md records.
abuse: $(READY)
	$(BIN)/python bench/abuse.py
	$(BIN)/python bench/load.py

# A longer Schemathesis run than make test's (tests/fuzz), with a new seed each time unless FUZZ_SEED is set.
FUZZ_EXAMPLES ?= 1000
fuzz: $(READY)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) FUZZ_SEED=$${FUZZ_SEED:-$$(date +%s)} $(BIN)/pytest tests/fuzz -p no:xdist \
		--timeout 0 -rA

clean:
	rm -rf $(VENV) $(AUDIT_VENV) $(UV_VENV) $(SETUP_CHECK_DIR) .aws-sam .pytest_cache .ruff_cache

# Registers (or updates) an app of a deployed stack: make app APP=sales ENTRY=sales.json [STACK=dify-relay-prod]
# (without STACK: samconfig.toml's default stack).
app: $(READY)
	$(BIN)/python tools/add_app.py "$(APP)" "$(ENTRY)" $(if $(STACK),--stack "$(STACK)")

BENCH_ARGS ?=
# Every figure of docs/benchmarks.md against its budget; BENCH_ARGS=--quick for a short smoke run.
bench: $(READY)
	PYENV_VERSION=$(SAM_PYENV) $(BIN)/python bench/run.py $(BENCH_ARGS)
