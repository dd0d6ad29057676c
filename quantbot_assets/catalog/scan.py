"""Finding run directories and their completion markers.

`scan_markers` is the sensor's tick: it returns the markers that appeared
since the last cursor. The cursor stays small however many runs exist: it
holds a change-time watermark, the few run directories seen without a marker
yet ("open" runs, i.e. runs in progress, and `_SUCCESS` runs whose asset
checks have not all recorded an outcome yet), and the run keys emitted within the
watermark's safety margin. A tick lists the runs root (one entry per month),
lists only the month folders whose change time passed the watermark (adding
a run directory changes its month folder), stats only the entries that
changed, and re-checks the open runs by name.

Change time (`st_ctime`), not modification time, is the clock: `tar -x` and
`touch -d` can set a directory's mtime to the past, but not its ctime, so a
restored or moved-in month folder is still seen as new.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from quantbot_assets.rundir import FAILED_MARKER, MONTH_PATTERN, SUCCESS_MARKER, checks_pending

MARKERS: tuple[str, str] = (SUCCESS_MARKER, FAILED_MARKER)
CURSOR_VERSION = 1
# Filesystem timestamps come from a coarse kernel clock that can trail
# time.time_ns() by a few milliseconds; anything changed within this margin
# before a tick is looked at again by the next tick (and de-duplicated).
WATERMARK_SLACK_NS = 2_000_000_000
# A run directory without a marker that has not changed for this long was
# killed outright: stop re-checking it (a later `catalog-sync` still finds it
# if it ever completes).
OPEN_RUN_TTL_NS = 7 * 24 * 3600 * 1_000_000_000


@dataclass(frozen=True)
class MarkerEvent:
    """A completion marker found in a run directory."""

    run_dir: Path
    marker: str  # "_SUCCESS" | "_FAILED"

    @property
    def run_key(self) -> str:
        return f"{self.run_dir.name}:{self.marker}"


@dataclass(frozen=True)
class _Cursor:
    watermark_ns: int | None  # None: nothing seen yet, everything is new
    open_runs: tuple[str, ...]  # "YYYY-MM/run_id=..." relative to the runs root
    recent_keys: frozenset[str]

    @staticmethod
    def parse(cursor: str | None) -> _Cursor:
        if not cursor:
            return _Cursor(None, (), frozenset())
        try:
            data = json.loads(cursor)
            if data.get("v") != CURSOR_VERSION:
                raise ValueError(f"cursor version {data.get('v')!r} is not {CURSOR_VERSION}")
            return _Cursor(
                int(data["wm"]),
                tuple(str(item) for item in data["open"]),
                frozenset(str(item) for item in data["recent"]),
            )
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"invalid marker-scan cursor {cursor[:200]!r}: {exc}") from exc

    def dump(self) -> str:
        return json.dumps(
            {
                "v": CURSOR_VERSION,
                "wm": self.watermark_ns,
                "open": sorted(self.open_runs),
                "recent": sorted(self.recent_keys),
            },
            separators=(",", ":"),
        )


def _visible(entry: os.DirEntry[str]) -> bool:
    # Dot entries are temporary files of atomic writes, never run directories.
    return not entry.name.startswith(".")


def _utf8(name: str) -> bool:
    # A name with bytes that are not UTF-8 can never be a run directory, and
    # its run key could not be serialized by the sensor: the full sync
    # (`iter_run_dir_candidates`) still rejects it with a reason.
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def month_dirs(runs_root: Path) -> Iterator[os.DirEntry[str]]:
    """The `YYYY-MM` folders directly under the runs root (symlinks excluded)."""
    try:
        entries = list(os.scandir(runs_root))
    except FileNotFoundError:
        return
    for entry in sorted(entries, key=lambda e: e.name):
        if MONTH_PATTERN.match(entry.name) and entry.is_dir(follow_symlinks=False):
            yield entry


def iter_run_dir_candidates(runs_root: Path) -> Iterator[Path]:
    """Every entry that claims to be a run directory, for a full sync.

    Yields all visible entries of the month folders (files, symlinks and badly
    named folders included, so that validation can reject them with a reason)
    and symlinked month folders themselves (refused as symlinks).
    """
    try:
        top = sorted(os.scandir(runs_root), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for entry in top:
        if not MONTH_PATTERN.match(entry.name):
            continue
        if entry.is_symlink():
            yield Path(entry.path)
        elif entry.is_dir():
            for run in sorted(os.scandir(entry.path), key=lambda e: e.name):
                if _visible(run):
                    yield Path(run.path)


def markers_present(run_dir: Path) -> list[str]:
    """Which completion markers `run_dir` holds."""
    return [marker for marker in MARKERS if os.path.lexists(run_dir / marker)]


def open_run_dirs(runs_root: Path, cursor: str) -> list[Path]:
    """The run directories a cursor still watches (no marker yet, or checks pending)."""
    return [Path(runs_root) / rel for rel in _Cursor.parse(cursor).open_runs]


def scan_markers(
    runs_root: Path, cursor: str | None, *, now_ns: int | None = None
) -> tuple[list[MarkerEvent], str]:
    """New marker events since `cursor`, and the cursor for the next tick.

    With `cursor=None` every marker under the root is new. Each marker is
    reported once across ticks (run keys `<run dir name>:<marker>`).
    `now_ns` stands in for the clock in tests.
    """
    runs_root = Path(runs_root)
    state = _Cursor.parse(cursor)
    now_ns = time.time_ns() if now_ns is None else now_ns
    next_watermark = now_ns - WATERMARK_SLACK_NS
    watermark = state.watermark_ns

    candidates: dict[str, int] = {}  # relative path -> ctime of the entry
    for month in month_dirs(runs_root):
        if watermark is not None and month.stat(follow_symlinks=False).st_ctime_ns <= watermark:
            continue
        for entry in os.scandir(month.path):
            if not _visible(entry) or not _utf8(entry.name):
                continue
            ctime = entry.stat(follow_symlinks=False).st_ctime_ns
            if watermark is None or ctime > watermark:
                candidates[f"{month.name}/{entry.name}"] = ctime
    for rel in state.open_runs:
        if rel not in candidates:
            try:
                candidates[rel] = os.lstat(runs_root / rel).st_ctime_ns
            except FileNotFoundError:
                continue  # deleted before it completed

    events: list[MarkerEvent] = []
    open_runs: list[str] = []
    recent: set[str] = set()
    for rel in sorted(candidates):
        run_dir = runs_root / rel
        ctime = candidates[rel]
        found = markers_present(run_dir)
        if SUCCESS_MARKER in found and checks_pending(run_dir):
            # Its checks run after the marker: an open run until they all have an outcome.
            found.remove(SUCCESS_MARKER)
        for marker in found:
            event = MarkerEvent(run_dir, marker)
            if event.run_key not in state.recent_keys:
                events.append(event)
            # The next tick looks again at entries changed after its watermark;
            # remember those keys so they are not reported twice.
            if ctime > next_watermark:
                recent.add(event.run_key)
        if not found and ctime > now_ns - OPEN_RUN_TTL_NS:
            open_runs.append(rel)
    new_cursor = _Cursor(next_watermark, tuple(open_runs), frozenset(recent))
    return events, new_cursor.dump()
