"""argparse `type=` validators: a value the command cannot use is refused while parsing.

Each raises `argparse.ArgumentTypeError` naming the value and what to give
instead; the parser (parser.py) puts the option's name in front, so the user
reads one line such as `error: --horizon 'soon': use a number with a unit ...`.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Sequence
from datetime import date
from typing import NamedTuple

DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)?$")
UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}


class Duration(NamedTuple):
    """A duration as given (`text`, for messages) and in milliseconds."""

    text: str
    ms: int


def duration(text: str) -> Duration:
    """`48h`, `30m`, `90s`, `1d`, `500ms` (a bare number is milliseconds)."""
    match = DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(
            f"{text!r}: use a number with a unit, e.g. 48h, 30m, 90s, 1d or 500ms"
        )
    return Duration(text, int(float(match.group(1)) * UNIT_MS[match.group(2) or "ms"]))


def positive_duration(text: str) -> Duration:
    value = duration(text)
    if value.ms <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be positive")
    return value


def day(text: str) -> date:
    """A UTC day, YYYY-MM-DD."""
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (costs in bps)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text}: must be a finite number >= 0")
    return value


def one_of(values: Sequence[str]) -> Callable[[str], str]:
    """One of `values` (like `choices=`, with a message that names the value first)."""

    def check(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"{text!r}: use one of {', '.join(values)}")
        return text

    check.__name__ = "one_of"
    return check
