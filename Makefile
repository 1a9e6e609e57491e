# The two commands a new user needs: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rods-installed

.PHONY: setup demo test lint bench clean

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints-cpu.txt -e '.[dev]'
	# bfcl-eval's declared dependencies are ~6 GB of unrelated pins; its multi-turn code needs only mpmath.
	$(BIN)/pip install --no-deps bfcl-eval==2026.3.23 mpmath
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rods demo

test: $(STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check rods graphs trainer services tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_env.py

clean:
	rm -rf $(VENV) .pytest_cache
