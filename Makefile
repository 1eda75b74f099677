# Every target creates .venv and installs what it needs: python3 and make are all it assumes.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test run bench lint migrate seed clean

# The install's chatter (build warnings) goes to a log; it is shown only if the install fails.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing branchbot and its dependencies into $(VENV) (log: $(VENV)/install.log) ..."
	@( $(BIN)/python -m pip install --quiet --upgrade pip && \
	   $(BIN)/python -m pip install --quiet -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	   || { cat $(VENV)/install.log; echo "install failed: see above"; exit 1; }
	@touch $(STAMP)

migrate: $(STAMP)
	$(BIN)/branchbot db upgrade

# The demo's own database (data/demo.db unless DATABASE_URL is set): migrated and seeded if empty.
seed: $(STAMP)
	$(BIN)/branchbot demo seed

# Migrates and seeds as `seed` does, then starts everything with a chat in the terminal.
demo: $(STAMP)
	$(BIN)/branchbot demo

test: $(STAMP)
	$(BIN)/python -m pytest -q $(PYTEST_ARGS)

run: migrate
	$(BIN)/branchbot run

bench: $(STAMP)
	$(BIN)/python -m bench.store
	@for b in throughput broadcast; do \
		if [ -f bench/$$b.py ]; then $(BIN)/python -m bench.$$b || exit 1; fi; \
	done

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) data/*.db* .pytest_cache test-artifacts
