# The two commands: `make run` (the portal with demo data) and `make test` (the whole suite).
# Works on a fresh Debian machine with Python 3.11 and make; see README.md.

PYTHON ?= python3
VENV ?= .venv
HOST ?= 127.0.0.1
PORT ?= 8000
BIN := $(VENV)/bin
export HOST PORT CI PYTHON VENV

.PHONY: run test test-fast test-sqlite test-postgres lint bench screenshots venv cli-venv test-deps clean

# Deps are reinstalled only when pyproject.toml or the constraints change (stamp files).
$(BIN)/python:
	scripts/bootstrap-venv.sh

$(VENV)/.installed-run: pyproject.toml requirements/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml requirements/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[test]'
	touch $@ $(VENV)/.installed-run

venv: $(VENV)/.installed-run

# The command-line tool in its own virtualenv, as a pipeline installs it (tests/cli/ run it).
cli-venv:
	scripts/build-cli-venv.sh

run: $(VENV)/.installed-run
	$(BIN)/python manage.py runportal

test-deps: $(VENV)/.installed-test cli-venv
	scripts/install-test-deps.sh
	scripts/start-postgres.sh

# The whole suite on SQLite, then the tests where the database matters on PostgreSQL.
# pytest's exit 5 ("no tests collected") in the second run is not a failure.
test: test-deps
	$(BIN)/pytest -m "not postgres_only"
	$(MAKE) --no-print-directory test-postgres

# The quick loop while coding: the suite without browser and slow tests, SQLite only.
test-fast: test-deps
	$(BIN)/pytest -m "not browser and not slow and not postgres_only"

test-postgres:
	DATABASE_URL="$$(cat var/test-database-url)" $(BIN)/pytest -m postgres; \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "No postgres-marked tests."; exit 0; fi; exit $$rc

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .

# Benchmarks (not timed tests): pages, validation and hostile input write docs/benchmarks.md
# themselves; mirror and proxy print their tables for it. Run on an otherwise idle machine.
bench: test-deps
	$(BIN)/python bench/pages.py
	$(BIN)/python bench/validate.py
	$(BIN)/python bench/mirror.py
	$(BIN)/python bench/proxy.py
	$(BIN)/python bench/hostile.py
	$(BIN)/python bench/production.py
	$(BIN)/python bench/api.py

screenshots: $(VENV)/.installed-test
	$(BIN)/python scripts/screenshots.py

clean:
	rm -rf $(VENV) var/venv-cli staticfiles test-results
