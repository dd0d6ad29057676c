"""Output shared by the commands: run outcomes, and tables as text or JSON."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any


def print_outcomes(outcomes: list[Any], as_json: bool, extra: dict[str, Any]) -> int:
    """The JSON result (with `extra`) or nothing; a `FAILED` line per failed run; the exit code."""
    failed = [o for o in outcomes if not o.success]
    if as_json:
        print(
            json.dumps(
                {
                    **extra,
                    "runs": [
                        {
                            "partition": o.partition_key,
                            "run_id": o.run_id,
                            "success": o.success,
                            "run_dir": str(o.run_dir),
                            "error": o.error,
                        }
                        for o in outcomes
                    ],
                },
                indent=2,
                default=str,
            )
        )
    for o in failed:
        print(f"FAILED {o.partition_key}: {o.error} ({o.run_dir})", file=sys.stderr)
    return 1 if failed else 0


def json_value(value: object) -> object:
    """JSON for what json cannot write: catalog timestamps (naive UTC) and the rest as text."""
    if isinstance(value, datetime):
        return value.isoformat() + "Z"
    return str(value)


def print_frame(frame: Any, as_json: bool, empty: str = "(none)") -> None:
    """A DataFrame as aligned text (missing values blank) or as JSON records (null)."""
    cleaned = frame.astype(object).where(frame.notna(), None)
    if as_json:
        print(json.dumps(cleaned.to_dict(orient="records"), indent=2, default=json_value))
    elif frame.empty:
        print(empty)
    else:
        print(cleaned.fillna("").to_string(index=False))


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"
