# keaplink — one entry point. Every target installs what it needs on a fresh machine.
#   make demo      the whole system locally (local AWS + Keap sandbox), no accounts needed
#   make test      everything CI checks (lint, types, template, build, all tests)
#   make unit      the pure unit tests, seconds; make test-fast: unit + integration on every core, minutes
#   make invoke FUNCTION=RefreshFunction EVENT=events/refresh.json   (against the running demo)
SHELL := /bin/bash
# The Python version is named once, as template.yaml's `Runtime: &runtime pythonN.N`; devtools/runtime-python
# reads it and finds that interpreter (pythonN.N on PATH, else pyenv's). PYTHON=… overrides the search.
PYTHON_VERSION := $(shell devtools/runtime-python --version)
PYTHON ?= $(shell devtools/runtime-python)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-py$(PYTHON_VERSION)-$(shell cat requirements-dev.txt constraints-dev.txt | cksum | cut -d' ' -f1)
export PYTHONPATH := $(CURDIR)/layers/keaplink:$(CURDIR)/sandbox:$(CURDIR)/devtools:$(CURDIR)
export SAM_CLI_TELEMETRY := 0
export AWS_EC2_METADATA_DISABLED := true
PYTEST_ARGS ?=
# The IaC scanner, in its own venv (it pins its own dependencies), made with the runtime's Python like the emulator's.
CHECKOV_VERSION := 3.3.30
CHECKOV_VENV := .tools/checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed-$(CHECKOV_VERSION)-py$(PYTHON_VERSION)

.PHONY: help venv lint typecheck template checkov build test unit test-fast test-client e2e-deps browser ministack demo invoke \
        docker lambda-image sam-invoke sam-api sandbox soak bench deploy clean

help:
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): requirements-dev.txt constraints-dev.txt
	@test -n "$(PYTHON)" || exit 1 # devtools/runtime-python said why
	@echo "==> setting up $(VENV) ($(PYTHON), the python$(PYTHON_VERSION) runtime's); first time takes about a minute"
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] != "$(PYTHON_VERSION)")'; then \
		echo "==> $(VENV) has another Python version: recreating it"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check --upgrade pip
	@$(VENV)/bin/pip install --quiet --disable-pip-version-check -r requirements-dev.txt -c constraints-dev.txt
	@rm -f $(VENV)/.installed-* && touch $@
	@echo "==> $(VENV) ready"

venv: $(STAMP) ## create the dev virtualenv (.venv)

lint: venv ## ruff + mypy
	@echo "==> ruff"; $(VENV)/bin/ruff check .
	@echo "==> mypy"; $(VENV)/bin/mypy layers/keaplink/keaplink functions sandbox/keap_sandbox devtools/keaplink_dev

template: venv checkov ## cfn-lint, sam validate --lint and checkov
	@echo "==> cfn-lint"; $(VENV)/bin/cfn-lint template.yaml
	@echo "==> sam validate --lint"; $(VENV)/bin/sam validate --lint

$(CHECKOV_STAMP):
	@test -n "$(PYTHON)" || exit 1 # devtools/runtime-python said why
	@echo "==> installing checkov $(CHECKOV_VERSION) in $(CHECKOV_VENV) (first time takes about a minute)"
	@rm -rf $(CHECKOV_VENV) && $(PYTHON) -m venv $(CHECKOV_VENV)
	@$(CHECKOV_VENV)/bin/pip install --quiet --disable-pip-version-check checkov==$(CHECKOV_VERSION)
	@touch $@

# Quiet on success; any failed check fails. A finding is fixed, or skipped in the resource's Metadata (checkov: skip:
# id, comment) with the reason - tests/unit/test_template.py makes sure every skip has one.
checkov: $(CHECKOV_STAMP) ## IaC scan of template.yaml (checkov in .tools/checkov): 0 failed, every skip with a reason
	@echo "==> checkov"; out=$$($(CHECKOV_VENV)/bin/checkov --file template.yaml --framework cloudformation \
		--skip-download --compact --quiet 2>&1) || { echo "$$out"; exit 1; }

build: venv ## sam build (no Docker needed)
	@echo "==> sam build"; $(VENV)/bin/sam build 2>&1 | grep -E "Build Succeeded|Error|error" ; test $${PIPESTATUS[0]} -eq 0

ministack: venv ## install the local AWS emulator in its own venv (.tools/ministack)
	@$(PY) -m keaplink_dev.local.stack --install-only

browser: ## install Debian's chromium + chromedriver for the e2e tests
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "==> installing chromium and chromium-driver (Debian packages)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; }

docker: ## Docker for sam local: as root, installs docker.io + debootstrap (apt) and starts dockerd if needed
	@devtools/ensure-docker

lambda-image: venv docker ## the image sam local runs functions in: AWS's if it can be pulled, else a stand-in
	@$(PY) -m keaplink_dev.local.lambda_image >/dev/null

e2e-deps: ministack browser build docker lambda-image

test: lint template e2e-deps test-client ## everything CI checks: lint, types, template, build, all tests, the client on each Python
	@echo "==> pytest"; $(PY) -m pytest tests --durations=15 $(PYTEST_ARGS)

unit: venv ## the pure unit tests (no servers, no network): seconds; run on every change
	@$(PY) -m pytest tests/unit -q --durations=5 $(PYTEST_ARGS)

test-fast: venv ## unit, sandbox, devtools and integration tests on every core; no soak, bench, e2e, Docker: minutes
	@$(PY) -m pytest tests -m "not e2e and not slow and not docker" -n auto -q --durations=10 $(PYTEST_ARGS)

# The client distribution (root pyproject.toml): its wheel installed in .tools/client-pyM.M for every Python from
# its floor (requires-python) to the runtime's that is on this machine; a missing one is skipped with a notice.
test-client: venv ## the client's tests (tests/client) on each supported Python, from its built wheel: under a minute
	@$(PY) -m keaplink_dev.client_dist -- $(PYTEST_ARGS)

demo: venv ## run the whole system locally; Ctrl-C stops it (installs the emulator and builds on its own)
	@$(PY) -m keaplink_dev.local.stack

invoke: venv ## invoke a deployed function of the running demo: FUNCTION=… EVENT=events/….json
	@test -n "$(FUNCTION)" && test -n "$(EVENT)" || { echo "usage: make invoke FUNCTION=RefreshFunction EVENT=events/refresh.json"; exit 2; }
	@$(PY) -m keaplink_dev.local.invoke $(FUNCTION) $(EVENT)

sam-invoke: venv docker ## sam local invoke against the running demo (Docker): FUNCTION=… EVENT=events/….json
	@test -n "$(FUNCTION)" && test -n "$(EVENT)" || { echo "usage: make sam-invoke FUNCTION=RefreshFunction EVENT=events/refresh-force.json"; exit 2; }
	@$(PY) -m keaplink_dev.local.sam_local invoke $(FUNCTION) $(EVENT)

sam-api: venv docker ## sam local start-api on 127.0.0.1:3000 (PORT=…) against the running demo (Docker)
	@$(PY) -m keaplink_dev.local.sam_local start-api --port $${PORT:-3000}

sandbox: venv ## run only the Keap sandbox (port 8765)
	@$(PY) -m keap_sandbox --port $${KEAP_SANDBOX_PORT:-8765}

soak: venv ## 90-day refresh soak simulation against the sandbox; prints its figures
	@$(PY) -m keaplink_dev.soak --days $${DAYS:-90}

bench: venv ## benchmarks: Keap calls per event, throughput, cold start, layer size
	@$(PY) -m keaplink_dev.perf.bench --json bench-output/bench.json

deploy: build ## deploy to your AWS account (asks for parameters the first time)
	$(VENV)/bin/sam deploy --guided

clean:
	rm -rf .aws-sam .keaplink test-output bench-output .pytest_cache .mypy_cache .ruff_cache
