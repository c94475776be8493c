#!/usr/bin/env bash
# The main job: set up, then run the demonstration on embedded default data into runs/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
exec .venv/bin/gnc demo --out runs/demo "$@"
