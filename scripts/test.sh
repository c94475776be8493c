#!/usr/bin/env bash
# The test command: set up, lint, type-check, build the API reference (strict), run the tests.
# Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export MPLBACKEND=Agg
# Small linear-algebra problems in tests run fastest (and most predictably) on one thread.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"
export MKL_NUM_THREADS="${MKL_NUM_THREADS:-1}"
.venv/bin/ruff check src tests benchmarks docs
.venv/bin/ruff format --check src tests benchmarks docs
.venv/bin/mypy
# The API reference from the docstrings (mkdocs.yml), warnings as errors, into a temporary folder.
site="$(mktemp -d)"
trap 'rm -rf "$site"' EXIT
.venv/bin/mkdocs build --strict --quiet --site-dir "$site"
.venv/bin/python -m pytest "$@"
