# Two commands matter: `make demo` and `make test`. Both install into .venv first.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[agent,server,test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/supervision demo

test: $(STAMP)
	$(BIN)/ruff check schedules camera_agent supervision tests bench
	$(BIN)/mypy --strict schedules camera_agent supervision
	$(BIN)/pytest -q -ra --durations=25

lint: $(STAMP)
	$(BIN)/ruff check schedules camera_agent supervision tests bench

typecheck: $(STAMP)
	$(BIN)/mypy --strict schedules camera_agent supervision

bench: $(STAMP)
	$(BIN)/python bench/ttff.py
	$(BIN)/python bench/plan_night.py
	$(BIN)/python bench/agent_cost.py
	$(BIN)/python bench/alert_latency.py

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
