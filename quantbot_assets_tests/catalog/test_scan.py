from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from quantbot_assets.catalog import scan
from quantbot_assets.catalog.scan import MarkerEvent, scan_markers
from quantbot_assets.rundir import FAILED_MARKER, SUCCESS_MARKER, run_dir_path, write_marker


def _run(root: Path, run_id: str, marker: str | None, month: int = 1) -> Path:
    run_dir = run_dir_path(root, run_id, datetime(2024, month, 2, tzinfo=UTC))
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")
    if marker:
        write_marker(run_dir, marker)
    return run_dir


def _keys(events: list[MarkerEvent]) -> list[str]:
    return [event.run_key for event in events]


def test_first_scan_reports_every_marker_and_not_unmarked_runs(runs_root):
    _run(runs_root, "a", SUCCESS_MARKER)
    _run(runs_root, "b", FAILED_MARKER, month=2)
    _run(runs_root, "c", None)
    events, _cursor = scan_markers(runs_root, None)
    assert _keys(events) == ["run_id=a:_SUCCESS", "run_id=b:_FAILED"]
    assert events[0].run_dir == runs_root / "2024-01" / "run_id=a"


def test_each_marker_is_reported_once_across_ticks(runs_root):
    _run(runs_root, "a", SUCCESS_MARKER)
    pending = _run(runs_root, "b", None)
    events, cursor = scan_markers(runs_root, None)
    assert _keys(events) == ["run_id=a:_SUCCESS"]

    events, cursor = scan_markers(runs_root, cursor)
    assert events == []

    _run(runs_root, "new", SUCCESS_MARKER, month=3)
    write_marker(pending, FAILED_MARKER)
    events, cursor = scan_markers(runs_root, cursor)
    assert _keys(events) == ["run_id=b:_FAILED", "run_id=new:_SUCCESS"]
    assert scan_markers(runs_root, cursor)[0] == []


def test_open_run_completing_later_is_found_without_its_month_changing(runs_root):
    pending = _run(runs_root, "slow", None)
    _events, cursor = scan_markers(runs_root, None)
    assert json.loads(cursor)["open"] == ["2024-01/run_id=slow"]
    write_marker(pending, SUCCESS_MARKER)
    events, cursor = scan_markers(runs_root, cursor)
    assert _keys(events) == ["run_id=slow:_SUCCESS"]
    assert json.loads(cursor)["open"] == []


def test_cursor_stays_small_however_many_runs_exist(runs_root):
    for i in range(300):
        _run(runs_root, f"r{i:04d}", SUCCESS_MARKER, month=1 + i % 12)
    # A tick a minute later: everything is older than the watermark margin.
    later = time.time_ns() + 60 * 1_000_000_000
    events, cursor = scan_markers(runs_root, None, now_ns=later)
    assert len(events) == 300
    assert len(cursor) < 100
    assert json.loads(cursor)["open"] == [] and json.loads(cursor)["recent"] == []


def test_a_tick_lists_only_changed_month_folders(runs_root, monkeypatch):
    monkeypatch.setattr(scan, "WATERMARK_SLACK_NS", 0)
    for month in (1, 2, 3):
        _run(runs_root, f"old{month}", SUCCESS_MARKER, month=month)
    time.sleep(0.05)  # past the coarse filesystem clock's granularity
    _events, cursor = scan_markers(runs_root, None)
    time.sleep(0.05)
    _run(runs_root, "fresh", SUCCESS_MARKER, month=2)
    listed: list[str] = []
    real_scandir = os.scandir

    def spy(path):
        listed.append(Path(path).name)
        return real_scandir(path)

    monkeypatch.setattr(scan.os, "scandir", spy)
    events, _cursor = scan_markers(runs_root, cursor)
    assert _keys(events) == ["run_id=fresh:_SUCCESS"]
    assert listed == ["runs", "2024-02"]  # months 1 and 3 were not listed


def test_run_moved_in_with_old_mtime_is_still_new(runs_root, tmp_path):
    _events, cursor = scan_markers(runs_root, None)
    time.sleep(0.01)
    staged = _run(tmp_path / "staging", "restored", SUCCESS_MARKER, month=5)
    old = time.time() - 86_400 * 30
    for path in (staged, staged.parent):
        os.utime(path, (old, old))
    (runs_root / "2024-05").mkdir()
    os.rename(staged, runs_root / "2024-05" / staged.name)
    events, _cursor = scan_markers(runs_root, cursor)
    assert _keys(events) == ["run_id=restored:_SUCCESS"]


def test_invalid_cursor_is_a_clear_error(runs_root):
    with pytest.raises(ValueError, match="invalid marker-scan cursor"):
        scan_markers(runs_root, '{"v": 99}')


def test_missing_root_yields_nothing(tmp_path):
    events, cursor = scan_markers(tmp_path / "nope", None)
    assert events == [] and json.loads(cursor)["open"] == []


def test_names_that_are_not_utf8_are_left_to_the_full_sync(runs_root):
    good = _run(runs_root, "a", SUCCESS_MARKER)
    bad = os.fsdecode(os.fsencode(good.parent) + b"/run_id=b\xff")
    os.makedirs(bad)
    write_marker(Path(bad), SUCCESS_MARKER)
    events, cursor = scan_markers(runs_root, None)
    assert _keys(events) == ["run_id=a:_SUCCESS"]
    json.loads(cursor)
    "\n".join(_keys(events)).encode()  # what the sensor hashes
    assert Path(bad) in list(scan.iter_run_dir_candidates(runs_root))
