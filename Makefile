# The two set-up commands: `make dev` (run the whole system locally) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PYDEPS := $(VENV)/.installed
NODEDEPS := node_modules/.installed
CHROMIUM := /usr/bin/chromium

# The environment every local run and test shares (moto needs fake credentials and UTC).
export TZ := UTC
export AWS_DEFAULT_REGION ?= us-east-1
export AWS_ACCESS_KEY_ID ?= testing
export AWS_SECRET_ACCESS_KEY ?= testing
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PYTHONPATH := $(CURDIR)/layers:$(CURDIR)

# The operator's commands (report, dlq, replay) reach a deployed stack with the caller's own AWS
# configuration (profile, SSO, region), never the fake credentials and region above; --local needs none.
OPS := env $(foreach v,AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_DEFAULT_REGION,$(if $(filter file,$(origin $(v))),-u $(v)))
QUEUES := publisher delivery email

.PHONY: install dev test bench fuzz synth lint clean report dlq replay

install: $(PYDEPS) $(NODEDEPS) $(CHROMIUM)

$(PYDEPS): pyproject.toml layers/deps/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade "pip>=25.1"
	$(VENV)/bin/pip install --quiet -r layers/deps/requirements.txt --group dev
	touch $@

$(NODEDEPS): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(CHROMIUM):
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null

dev: install
	$(PY) -m infra.local

test: install
	$(PY) -m pytest

bench: install
	$(PY) -m tests.bench

fuzz: install  # schemathesis against the local stack from /openapi.json: make fuzz ARGS=300 (examples per operation)
	$(PY) -m tests.e2e.fuzz $(ARGS)

report: install  # the SLA report as a table: make report ARGS="--from 2026-11-01 --to 2026-11-30 [--local]"
	$(OPS) $(PY) -m helpdesk.report $(ARGS)

dlq: install  # what failed: make dlq QUEUE=publisher|delivery|email [ARGS=--local]
	@$(if $(filter $(QUEUE),$(QUEUES)),,echo "QUEUE must be one of: $(QUEUES)" >&2; exit 2)
	$(OPS) $(PY) -m helpdesk.replay $(QUEUE) --show $(ARGS)

replay: install  # replay it once the cause is fixed (nothing is sent twice): make replay QUEUE=... [ARGS=--local]
	@$(if $(filter $(QUEUE),$(QUEUES)),,echo "QUEUE must be one of: $(QUEUES)" >&2; exit 2)
	$(OPS) $(PY) -m helpdesk.replay $(QUEUE) --replay $(ARGS)

synth: install
	npx cdk synth --quiet

clean:
	rm -rf $(VENV) node_modules cdk.out .local
