# taskrunner — the README's two commands are `make demo` and `make test`.
SHELL := /bin/bash
export SAM_CLI_TELEMETRY := 0
.DEFAULT_GOAL := help

# Python 3.13 is the Lambda runtime and the project's Python. pyenv has it on our machines;
# elsewhere any python3.13 on PATH works.
PYTHON ?= $(shell (pyenv prefix 3.13.0 2>/dev/null || true) | sed 's|$$|/bin/python3|' | grep -v '^/bin' || command -v python3.13)
UV := $(PYTHON) -m uv
VENV := .venv
RUN := $(VENV)/bin
# SAM CLI, cfn-lint and checkov pin or downgrade boto3: each runs in its own uv tool environment.
SAM := $(UV) tool run --from aws-sam-cli==1.170.0 sam
CFN_LINT := $(UV) tool run --from cfn-lint==1.58.0 cfn-lint
CHECKOV := $(UV) tool run --from checkov==3.3.30 checkov

.PHONY: help install build validate deploy lint typecheck test test-unit test-security test-integration test-template test-e2e \
        template-checks demo bench requirements clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

$(VENV)/.installed: pyproject.toml uv.lock
	@test -x "$(PYTHON)" || { echo "Python 3.13 not found: set PYTHON=/path/to/python3.13"; exit 1; }
	$(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	$(UV) sync --frozen --all-extras --python $(PYTHON)
	@touch $@

install: $(VENV)/.installed  ## create .venv with the project, the CLI and the dev tools

# What the python3.13 Lambda runtime already provides is left out of the function package.
RUNTIME_PROVIDED := boto3 botocore s3transfer jmespath python-dateutil six urllib3

requirements: install  ## export the Lambda runtime requirements from the lock (src/requirements.txt)
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header --no-annotate \
		$(addprefix --no-emit-package ,$(RUNTIME_PROVIDED)) -o src/requirements.txt >/dev/null

build: requirements  ## taskrunner validate, then sam build (pip, no container) into .aws-sam/
	$(RUN)/taskrunner validate template.yaml
	PYTHON=$(PYTHON) $(SAM) build --template template.yaml

validate: install  ## every job block (taskrunner validate), then sam validate --lint; no sam on PATH needed
	$(RUN)/taskrunner validate template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1

# `sam deploy --guided` the first time: while samconfig.toml's SAM_ENV table has no network of yours (no VpcId,
# or the example one it ships with); `sam deploy` with the saved parameters after that.
SAM_ENV ?= default
EXAMPLE_VPC := vpc-0123456789abcdef0
HAS_DEPLOY_PARAMS = $(RUN)/python -c "import sys, tomllib; \
	env = tomllib.load(open('samconfig.toml', 'rb')).get('$(SAM_ENV)', {}); \
	given = env.get('deploy', {}).get('parameters', {}).get('parameter_overrides', []); \
	given = given if isinstance(given, str) else ' '.join(given); \
	sys.exit(0 if 'VpcId=' in given and '$(EXAMPLE_VPC)' not in given else 1)" 2>/dev/null

deploy: build  ## sam deploy (guided the first time: asks for VpcId, Subnets, … and saves them in samconfig.toml)
	@if $(HAS_DEPLOY_PARAMS); then \
		echo "$(SAM) deploy --config-env $(SAM_ENV)"; $(SAM) deploy --config-env $(SAM_ENV); \
	else \
		echo "samconfig.toml [$(SAM_ENV)] has no network of yours yet: sam deploy --guided asks and saves it"; \
		$(SAM) deploy --guided --config-env $(SAM_ENV); \
	fi

lint: install  ## ruff and mypy (strict on src/)
	$(RUN)/ruff check src tests benchmarks examples tools
	$(RUN)/ruff format --check src tests benchmarks examples tools
	$(RUN)/mypy

typecheck: install
	$(RUN)/mypy

test-unit: install  ## unit tests: no network
	$(RUN)/pytest -q -n 2 tests/unit

test-integration: install  ## integration tests: the real template deployed into moto
	$(RUN)/pytest -q tests/integration

test-security: install  ## security tier: every trust boundary, attacked
	$(RUN)/pytest -q -n 2 tests/security

test-e2e: install  ## local mode end to end
	$(RUN)/pytest -q tests/e2e

test-template: install  ## template tests: sam validate --lint, cfn-lint, checkov, IAM assertions
	@# src/requirements.txt (the Lambda package's dependencies) must be what the lock says
	$(UV) export --frozen --no-dev --no-hashes --no-emit-project --no-header --no-annotate \
		$(addprefix --no-emit-package ,$(RUNTIME_PROVIDED)) 2>/dev/null | diff -u src/requirements.txt - \
		|| { echo "src/requirements.txt is stale: run make requirements"; exit 1; }
	$(RUN)/taskrunner validate template.yaml
	$(SAM) validate --lint --template template.yaml --region us-east-1
	@# The linters see job.yaml with its defaults only: also scan it as each sample job, and as one job with every
	@# optional part on, rendered with those parameters as defaults (a finding there is fixed in jobs/job.yaml).
	$(RUN)/python tools/render_jobs.py
	$(CFN_LINT) template.yaml jobs/job.yaml build/rendered-jobs/*.yaml
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml -f jobs/job.yaml \
		$$(printf -- '-f %s ' build/rendered-jobs/*.yaml)
	$(RUN)/pytest -q tests/template tests/policies

test: lint test-unit test-security test-integration test-template test-e2e  ## every test tier and the template checks

demo: install  ## run the task runner end to end on the embedded AWS and print a summary
	$(RUN)/taskrunner local --scenario demo

bench: install  ## benchmarks (JSON results in benchmarks/results/)
	$(RUN)/python benchmarks/run_all.py

clean:
	rm -rf $(VENV) .aws-sam .mypy_cache .ruff_cache .pytest_cache
