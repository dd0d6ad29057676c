#!/usr/bin/env bash
# One command from a fresh clone: a virtual environment with the pinned
# packages, the sample data, a path-only week and two policy weeks through
# Dagster, and the run catalog. Re-running it reuses what is there.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
export DAGSTER_HOME=${DAGSTER_HOME:-$PWD}
exec .venv/bin/quantbot quickstart "$@"
