"""What differs between two run directories (`quantbot backtest diff RUN_A RUN_B`).

Plain Python over `run.json` and the artifact files: works on any run directory, catalogued
or not. A run is named by a path to its directory or by its run id, looked up under the runs
root (`<root>/<YYYY-MM>/run_id=<id>`). The diff holds:

- `parameters`, `dataset`, `code` (git commit, branch, dirty), `config_hash` and `data`
  (calls_hash, candles_hash, data_fingerprint): each field whose values differ, `{a, b}`;
- `trades`: per (policy_id, call_id) present in both runs, the trades whose `exit_reason`,
  `exit_ts_ms` or `realized_return_bps` changed (`{a, b}`, and `delta` = b - a for numbers),
  and the trades on one side only;
- `calls`: the call ids on one side only (from the runs' alerts, paths and trades files);
- `summary`: per (policy_id, day), each numeric summary column that changed (`{a, b, delta}`),
  and the rows on one side only.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import ValidationError

from quantbot_assets.errors import DataError
from quantbot_assets.rundir import MANIFEST_FILE, RUN_DIR_PREFIX, RunManifest, check_run_id

TRADE_KEY = ["policy_id", "call_id"]
TRADE_FIELDS = ["exit_reason", "exit_ts_ms", "realized_return_bps"]
SUMMARY_KEY = ["policy_id", "day"]
CODE_FIELDS = ["git_commit", "git_branch", "git_dirty"]
DATA_FIELDS = ["calls_hash", "candles_hash", "data_fingerprint"]


class RunDiffError(DataError, ValueError):
    """A run that cannot be diffed: unknown, not a run directory, unreadable (one line)."""


def resolve_run_dir(ref: str, runs_root: Path) -> Path:
    """The run directory `ref` names: an existing directory, else a run id under `runs_root`."""
    path = Path(ref)
    if not path.is_dir():
        try:
            check_run_id(ref)
        except ValueError:
            raise RunDiffError(f"{ref!r} is neither a run directory nor a run id") from None
        found = sorted(Path(runs_root).glob(f"*/{RUN_DIR_PREFIX}{ref}"))
        if not found:
            raise RunDiffError(f"no run {ref!r} under {runs_root}")
        path = found[0]
    if not (path / MANIFEST_FILE).is_file():
        raise RunDiffError(f"{path} is not a run directory (no {MANIFEST_FILE})")
    return path


def _manifest(run_dir: Path) -> RunManifest:
    try:
        return RunManifest.model_validate_json((run_dir / MANIFEST_FILE).read_bytes())
    except (OSError, ValueError, ValidationError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RunDiffError(f"{run_dir / MANIFEST_FILE}: unreadable manifest: {first}") from None


def _artifact(run_dir: Path, manifest: RunManifest, name: str) -> pd.DataFrame | None:
    """An artifact file of the run as a DataFrame (None when the run has none)."""
    entry = manifest.artifacts.get(name)
    if entry is None:
        return None
    path = (run_dir / entry.path).resolve()
    if not path.is_relative_to(run_dir.resolve()):
        raise RunDiffError(f"{run_dir}: artifact {name} points outside its run directory")
    try:
        return pq.read_table(path).to_pandas()
    except (OSError, pa.ArrowException) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise RunDiffError(f"{path}: unreadable {name} artifact: {first}") from None


def _plain(value: Any) -> Any:
    """JSON-friendly scalars (numpy numbers to Python, NaN and NA to None)."""
    if value is None or value is pd.NA:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _differs(a: Any, b: Any) -> bool:
    a, b = _plain(a), _plain(b)
    return a != b


def _pair(a: Any, b: Any) -> dict[str, Any]:
    out = {"a": _plain(a), "b": _plain(b)}
    numbers = [v for v in out.values() if isinstance(v, int | float) and not isinstance(v, bool)]
    if len(numbers) == 2:
        out["delta"] = out["b"] - out["a"]
    return out


def _fields(a: dict[str, Any], b: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        key: _pair(a.get(key), b.get(key))
        for key in sorted(set(a) | set(b))
        if _differs(a.get(key), b.get(key))
    }


def _keys(frame: pd.DataFrame, key: list[str]) -> list[dict[str, Any]]:
    return [{str(k): _plain(v) for k, v in row.items()} for row in frame[key].to_dict("records")]


def _table_diff(
    a: pd.DataFrame | None, b: pd.DataFrame | None, key: list[str], fields: list[str] | None
) -> dict[str, Any]:
    """Rows matched on `key`: the changed `fields` (every numeric column when None) of the
    rows in both, and the keys on one side only."""
    if a is None or b is None:
        return {"compared": 0, "changed": [], "only_in_a": [], "only_in_b": [], "missing": True}
    merged = a.merge(b, on=key, how="outer", suffixes=("_a", "_b"), indicator=True, sort=True)
    if fields is None:
        fields = [
            c
            for c in a.columns
            if c in b.columns
            and c not in key
            and c != "run_id"
            and pd.api.types.is_numeric_dtype(a[c])
        ]
    both = merged[merged["_merge"] == "both"]
    changed = []
    for row in both.to_dict("records"):
        changes = {
            f: _pair(row[f"{f}_a"], row[f"{f}_b"])
            for f in fields
            if _differs(row[f"{f}_a"], row[f"{f}_b"])
        }
        if changes:
            changed.append({**{k: _plain(row[k]) for k in key}, "changes": changes})
    return {
        "compared": len(both),
        "changed": changed,
        "only_in_a": _keys(merged[merged["_merge"] == "left_only"], key),
        "only_in_b": _keys(merged[merged["_merge"] == "right_only"], key),
    }


def _call_ids(frames: list[pd.DataFrame | None]) -> set[str]:
    return {str(c) for f in frames if f is not None and "call_id" in f for c in f["call_id"]}


def diff_runs(run_a: str | Path, run_b: str | Path, runs_root: Path = Path("runs")) -> dict:
    """The differences between two runs (module docstring), as JSON-ready dicts."""
    dir_a = resolve_run_dir(str(run_a), runs_root)
    dir_b = resolve_run_dir(str(run_b), runs_root)
    ma, mb = _manifest(dir_a), _manifest(dir_b)
    art_a = {n: _artifact(dir_a, ma, n) for n in ("alerts", "paths", "trades", "summary")}
    art_b = {n: _artifact(dir_b, mb, n) for n in ("alerts", "paths", "trades", "summary")}
    calls_a = _call_ids(list(art_a.values())[:3])
    calls_b = _call_ids(list(art_b.values())[:3])
    dataset_a = ma.dataset.model_dump(by_alias=True)
    dataset_b = mb.dataset.model_dump(by_alias=True)
    return {
        "a": {"run_id": ma.run_id, "run_dir": str(dir_a), "run_type": ma.run_type},
        "b": {"run_id": mb.run_id, "run_dir": str(dir_b), "run_type": mb.run_type},
        "parameters": _fields(ma.parameters, mb.parameters),
        "dataset": _fields(dataset_a, dataset_b),
        "code": _fields(
            {k: getattr(ma, k) for k in CODE_FIELDS}, {k: getattr(mb, k) for k in CODE_FIELDS}
        ),
        "config_hash": _fields({"config_hash": ma.config_hash}, {"config_hash": mb.config_hash}),
        "data": _fields(
            {k: getattr(ma, k) for k in DATA_FIELDS}, {k: getattr(mb, k) for k in DATA_FIELDS}
        ),
        "calls": {"only_in_a": sorted(calls_a - calls_b), "only_in_b": sorted(calls_b - calls_a)},
        "trades": _table_diff(art_a["trades"], art_b["trades"], TRADE_KEY, TRADE_FIELDS),
        "summary": _table_diff(art_a["summary"], art_b["summary"], SUMMARY_KEY, None),
    }


def _side(value: Any) -> str:
    return "-" if value is None else f"{value:.6g}" if isinstance(value, float) else str(value)


def format_diff(diff: dict) -> str:
    """The diff as text for the terminal."""
    a, b = diff["a"], diff["b"]
    lines = [f"A: {a['run_id']} ({a['run_type']}) {a['run_dir']}"]
    lines.append(f"B: {b['run_id']} ({b['run_type']}) {b['run_dir']}")
    for section in ("parameters", "dataset", "code", "config_hash", "data"):
        fields = diff[section]
        if not fields:
            lines.append(f"{section}: same")
            continue
        lines.append(f"{section}:")
        for name, pair in fields.items():
            lines.append(f"  {name}: {_side(pair['a'])} -> {_side(pair['b'])}")
    calls = diff["calls"]
    lines.append(f"calls: {len(calls['only_in_a'])} only in A, {len(calls['only_in_b'])} only in B")
    for side in ("only_in_a", "only_in_b"):
        if calls[side]:
            lines.append(
                f"  {side}: {', '.join(calls[side][:20])}"
                + (" ..." if len(calls[side]) > 20 else "")
            )
    for section, what in (("trades", "trades"), ("summary", "summary rows")):
        part = diff[section]
        if part.get("missing"):
            lines.append(f"{section}: not in both runs")
            continue
        lines.append(
            f"{section}: {part['compared']} {what} in both, {len(part['changed'])} changed, "
            f"{len(part['only_in_a'])} only in A, {len(part['only_in_b'])} only in B"
        )
        for row in part["changed"][:50]:
            name = " ".join(str(v) for k, v in row.items() if k != "changes")
            changes = "; ".join(
                f"{field} {_side(p['a'])} -> {_side(p['b'])}"
                + (f" ({p['delta']:+.6g})" if "delta" in p else "")
                for field, p in row["changes"].items()
            )
            lines.append(f"  {name}: {changes}")
        if len(part["changed"]) > 50:
            lines.append(f"  ... {len(part['changed']) - 50} more (--json for all)")
    return "\n".join(lines)
