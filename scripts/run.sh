#!/usr/bin/env bash
# The main job: set up, then reproduce the paper's study (quick profile, CPU, embedded data)
# into runs/reproduce (report.html, results.json, figures/). Extra args go to `gnc reproduce`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
exec .venv/bin/gnc reproduce --profile quick --out runs/reproduce "$@"
