#!/usr/bin/env bash
# Every pinned package (and what it pulls in) has a binary wheel for each
# Python version pyproject.toml declares; only 3.11 runs here, so resolve the
# others without installing (pip's dry run against the package index).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mapfile -t deps < <("$PY" - <<'PYEOF'
import tomllib
project = tomllib.load(open("pyproject.toml", "rb"))["project"]
for dep in project["dependencies"] + project["optional-dependencies"]["dev"]:
    print(dep)
PYEOF
)
for version in 3.11 3.12 3.13 3.14; do
  if "$PY" -m pip install --quiet --disable-pip-version-check --dry-run --ignore-installed \
      --only-binary=:all: --python-version "$version" --implementation cp \
      --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux_2_28_x86_64 --target "$(mktemp -d)" "${deps[@]}" 2>/tmp/wheels.err; then
    echo "python $version: every pinned package has a wheel"
  else
    grep -v '^WARNING' /tmp/wheels.err | tail -5
    echo "python $version: a pinned package has no wheel" >&2
    exit 1
  fi
done
