# `make run` sets up and runs reroute locally; `make test` sets up and runs the whole suite.
# `make test-fast` runs the unit layer without the slow property tests (seconds, for the edit-test loop).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: run test test-fast test-faults lint bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/reroute up --demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest tests/unit -m "not slow and not faults"

# The fault matrix under load (docs/reliability.md): minutes per scenario, so not part of `make test`.
# Broker and crash faults run on SQLite; database faults only with DATABASE_URL (PostgreSQL).
test-faults: $(STAMP)
	$(BIN)/python -m pytest tests/faults -s -m "faults and $(if $(DATABASE_URL),postgres,not postgres)"

lint: $(STAMP)  ## ruff and strict mypy (not part of `make test`: new releases of either add rules)
	$(BIN)/ruff check services shared apps bench tests
	$(BIN)/mypy services shared apps bench

# Metrics and alert rules against a real Prometheus (Debian's `prometheus` package: prometheus and promtool); skipped
# without them, failed instead with REROUTE_REQUIRE_PROMETHEUS=1 (.ci/run installs them and sets it).
.PHONY: test-prometheus
test-prometheus: $(STAMP)
	$(BIN)/python -m pytest -m prometheus

.PHONY: docs
docs: $(STAMP)  ## the AsyncAPI documents in docs/, generated from shared/contracts
	$(BIN)/python -m shared.asyncapi

.PHONY: screenshots
screenshots: $(STAMP)  ## start reroute up --demo with its console; write a PNG of each console page to docs/screenshots/
	$(BIN)/python -m tests.support.screenshots

.PHONY: security-doc
security-doc: $(STAMP)  ## run the abuse tests named in tests/security_cases.py; write their results into docs/security.md
	$(BIN)/python -m tests.support.security_doc

bench: $(STAMP)  ## throughput against raw NATS, latency at fixed rates, peak RSS, drain after an outage (docs/performance.md)
	$(BIN)/python -m bench.pipeline

.PHONY: bench-spans
bench-spans: $(STAMP)  ## one referral's traces at a year of traffic (1M spans): the span store's index vs the file scan (minutes)
	$(BIN)/python -m bench.span_store

.PHONY: bench-history
bench-history: $(STAMP)  ## scheduling on a simulated year of history against an empty one: the ratio per operation (docs/performance.md)
	$(BIN)/python -m bench.history

.PHONY: bench-console
bench-console: $(STAMP)  ## the console's main pages on a real reroute up with 500 mentors: p50/p95/max, body size, CPU per request, RSS (docs/performance.md)
	$(BIN)/python -m bench.console_pages

# b901b24: the last commit before issue 15's work (663e8cf was its first); `make bench-round AGAINST=<rev>` for another
AGAINST ?= b901b24
.PHONY: bench-round
bench-round: $(STAMP)  ## the batch round's plan at 500 x 5,000 against $(AGAINST)'s, interleaved in one run: time, placements, gap to the bound, the event loop's waits (minutes)
	$(BIN)/python -m bench.round_speed --against $(AGAINST) --loop

clean:
	rm -rf $(VENV) .reroute

# Containers (README, Operate): docker-compose.yml runs the stack from the official base images; CI runs the same
# roles from images it builds from Debian (docker-compose.ci.yml), because the public registry is not reachable there.
COMPOSE ?= docker-compose
COMPOSE_PROJECT ?= reroute
COMPOSE_ENV ?= deploy/.env
compose := $(COMPOSE) -p $(COMPOSE_PROJECT) --env-file $(COMPOSE_ENV)

.PHONY: images compose-env compose-up compose-up-ci compose-down test-docker test-containers

images:  ## CI's Debian-built images for docker-compose.ci.yml (as root: debootstrap; a running Docker engine)
	deploy/ci/build-images.sh

compose-env: $(STAMP)  ## deploy/.env with fresh secrets and the published ports (an existing one is kept)
	$(BIN)/python -m apps.container.env $(COMPOSE_ENV)

compose-up: compose-env  ## build reroute's image on python:3.11-slim and start the stack; returns once it is healthy
	$(compose) up -d --build

compose-up-ci: compose-env  ## the same on the images `make images` built (no registry needed)
	$(compose) -f docker-compose.yml -f docker-compose.ci.yml up -d --no-build

compose-down:  ## stop and remove the stack's containers; its volumes (the data) stay
	$(compose) down

test-docker: $(STAMP)  ## the compose stack's tests (tests/deploy) on the images `make images` built
	$(BIN)/python -m pytest tests/deploy -m docker

# NATS_URL and DATABASE_URL would name servers of their own instead of the containers: unset here.
test-containers: $(STAMP)  ## integration tests and the e2e smoke test on NATS and PostgreSQL containers (testcontainers, the images `make images` built)
	env -u NATS_URL -u DATABASE_URL $(BIN)/python -m pytest tests/integration tests/e2e/test_smoke.py -m "not faults and not docker"

# Backup and restore of the compose stack (README, Operate): PostgreSQL is not published and the app image has no
# pg_dump, so the dump runs in the postgres container; the .env goes with it, as it holds intake's keys.
BACKUP ?=
pg_schemas := --schema intake --schema risk --schema scheduling

.PHONY: compose-backup compose-restore

compose-backup:  ## BACKUP=DIR (new): the stack's databases (pg_dump; services stopped meanwhile) and its .env
	@test -n "$(BACKUP)" || { echo "give BACKUP=DIR, a new directory"; exit 2; }
	@test ! -e "$(BACKUP)" || { echo "$(BACKUP) exists: back up into a new directory"; exit 2; }
	mkdir -m 700 -p "$(BACKUP)"
	$(compose) stop intake risk scheduling
	$(compose) exec -T postgres pg_dump -U postgres -d reroute --format=custom $(pg_schemas) >"$(BACKUP)/postgresql.dump"
	$(compose) start intake risk scheduling
	install -m 600 "$(COMPOSE_ENV)" "$(BACKUP)/compose.env"
	cd "$(BACKUP)" && sha256sum postgresql.dump compose.env >SHA256SUMS
	@echo "backed up into $(BACKUP); compose.env holds intake's keys and every password: keep it safe"

compose-restore:  ## BACKUP=DIR: a stack with no database volume yet, brought back from compose-backup's DIR
	@test -f "$(BACKUP)/postgresql.dump" || { echo "give BACKUP=DIR, made by make compose-backup"; exit 2; }
	cd "$(BACKUP)" && sha256sum --check --quiet SHA256SUMS
	@! docker volume inspect "$(COMPOSE_PROJECT)_pg-data" >/dev/null 2>&1 || { echo "volume $(COMPOSE_PROJECT)_pg-data \
	exists: restore only into a stack without one (docker volume rm it, after a backup, to replace it)"; exit 2; }
	@test ! -e "$(COMPOSE_ENV)" || cmp -s "$(COMPOSE_ENV)" "$(BACKUP)/compose.env" || { echo "$(COMPOSE_ENV) is not \
	the backup's: move it aside (the backup's holds the keys its referrals need)"; exit 2; }
	install -m 600 "$(BACKUP)/compose.env" "$(COMPOSE_ENV)"
	$(compose) up -d postgres
	@for i in $$(seq 120); do $(compose) exec -T postgres pg_isready -q -h 127.0.0.1 -U postgres -d reroute && exit 0; \
	sleep 1; done; echo "postgres not ready within 120 s"; exit 1
	$(compose) exec -T postgres pg_restore -U postgres -d reroute --clean --if-exists --single-transaction \
	<"$(BACKUP)/postgresql.dump"
	$(compose) up -d
	@echo "restored from $(BACKUP); erase again everyone erased since it was made (README, Operate)"
