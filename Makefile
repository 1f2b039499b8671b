# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Where `make run` listens: `make run PORT=8080`, `make run HOST=0.0.0.0` (or the same as
# environment variables); GUNICORN_BIND, when set, wins over both.
HOST ?= 127.0.0.1
PORT ?= 8000
BIND := $(or $(GUNICORN_BIND),$(HOST):$(PORT))
# The address printed for people and curl: 0.0.0.0 listens everywhere, including 127.0.0.1.
URL := http://$(subst 0.0.0.0,127.0.0.1,$(BIND))

# make run: production-like (DEBUG off, gunicorn, whitenoise); a local secret is made once.
RUN_ENV = SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" GUNICORN_BIND="$(BIND)"
# make test: the suite needs a SECRET_KEY; DATABASE_URL / REDIS_URL pass through when set.
TEST_ENV = SECRET_KEY="$${SECRET_KEY:-test-only-secret-key}"

.PHONY: run manage reset-demo test test-quick typecheck check-live check-replica measure-replica lint format clean bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.run-deps: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev-deps: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.run-deps

.secret_key:
	$(PYTHON) -c "import secrets; print(secrets.token_urlsafe(50))" > $@

run: $(VENV)/.run-deps .secret_key
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py collectstatic --no-input --verbosity 0
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --base-url $(URL)
	$(RUN_ENV) $(BIN)/gunicorn -c config/gunicorn.conf.py

# make manage ARGS="seed_demo --help": any manage.py command, with the venv and the local key.
manage: $(VENV)/.run-deps .secret_key
	$(RUN_ENV) $(BIN)/python manage.py $(ARGS)

# make reset-demo: every row deleted, the demo set loaded afresh (ids from 1 again); the venv,
# the key and the database itself stay. Stop `make run` first, start it again after.
reset-demo: $(VENV)/.run-deps .secret_key
	$(RUN_ENV) $(BIN)/python manage.py migrate --no-input
	$(RUN_ENV) $(BIN)/python manage.py seed_demo --reset --no-input --base-url $(URL)

test: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/pytest $(PYTEST_ARGS)

# make test-quick: while working. Keeps the test database between runs (--reuse-db; add
# --create-db after a new migration), runs the last failures first and leaves out the volume
# tests (marker `slow`), which CI and `make test` still run.
test-quick: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/pytest --reuse-db --ff -m "not slow and not live and not replica" $(PYTEST_ARGS)

# make check-live: the checks that need a live server (fuzzing, faults under load); they start
# their own gunicorn on a free port against DATABASE_URL (PostgreSQL) and REDIS_URL (Redis).
check-live: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/pytest -m live tests/live $(PYTEST_ARGS)

# make check-replica: reads from PostgreSQL streaming replicas (issue 18). Starts its own primary
# and two replicas (initdb, pg_basebackup -R, as the postgres OS user, on free ports), its own
# redis-server and gunicorn; needs root and the PostgreSQL 15 server binaries, no DATABASE_URL.
check-replica: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/pytest -m replica tests/replica $(PYTEST_ARGS)

# make measure-replica: what a cache miss costs the primary with and without a replica
# (tests/replica/measure.py; figures in docs/scaling.md). About two minutes; same needs.
measure-replica: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/python -m tests.replica.measure

lint: $(VENV)/.dev-deps
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	SECRET_KEY=lint-only $(BIN)/python manage.py makemigrations --check --dry-run
	$(MAKE) typecheck

# make typecheck: mypy with django-stubs and djangorestframework-stubs over the typed modules
# (the `files` of [tool.mypy] in pyproject.toml); what they import is read, not reported on.
typecheck: $(VENV)/.dev-deps
	SECRET_KEY=typecheck-only $(BIN)/mypy

format: $(VENV)/.dev-deps
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) staticfiles db.sqlite3

# make bench: seeds PostgreSQL, serves with gunicorn on production settings and measures every
# endpoint against a bare view in the same run (see bench/README.md). Needs DATABASE_URL/REDIS_URL.
bench: $(VENV)/.dev-deps
	$(TEST_ENV) $(BIN)/python -m bench $(BENCH_ARGS)
