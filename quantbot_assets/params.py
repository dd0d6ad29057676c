"""Run parameters and what a result's identity is made of (plain Python, no Dagster).

Every artifact row of a run was computed with one parameter set. Which
parameters matter depends on the layer: the truth layer (`alerts`, `paths`,
`errors`) depends on the interval, horizon, entry delay and activity move;
the policy layer (`trades`, `summary`) and the frontier on the interval,
horizon, entry delay, fees and slippage. `params_hash` hashes exactly the
parameters an artifact type depends on, so two runs that differ only in fees
share a truth-layer identity, and a 5m and a 1m truth layer never do. The
catalog keys exports and leaderboards by it, so results of different
parameters sit side by side and are never combined.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

# The bar intervals a run may use, and their length.
INTERVAL_MS: dict[str, int] = {"1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
INTERVALS: tuple[str, ...] = tuple(INTERVAL_MS)
DEFAULT_HORIZON_MS = 48 * 3_600_000

DEFAULTS: dict[str, Any] = {
    "interval": "1m",
    "horizon_ms": DEFAULT_HORIZON_MS,
    "entry_delay_ms": 0,
    "activity_move_bps": 1000,
    "fee_bps": 0,
    "slippage_bps": 0,
}

TRUTH_KEYS: tuple[str, ...] = ("interval", "horizon_ms", "entry_delay_ms", "activity_move_bps")
POLICY_KEYS: tuple[str, ...] = (
    "interval",
    "horizon_ms",
    "entry_delay_ms",
    "fee_bps",
    "slippage_bps",
)
# The candle windows (features) depend on these only.
WINDOW_KEYS: tuple[str, ...] = ("interval", "horizon_ms", "entry_delay_ms")

TRUTH_ARTIFACTS = frozenset({"alerts", "paths", "errors"})


def canonical_json(value: Any) -> str:
    """Stable JSON for hashing and storing parameters."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def content_hash(value: Any) -> str:
    """Identity from content: equal values give equal 16-hex-digit hashes."""
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()[:16]


def _number(value: Any) -> Any:
    # 500 and 500.0 are the same parameter: hash whole floats as ints.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def subset(parameters: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    """`keys` of `parameters`, defaults filled in for the ones a run did not record."""
    return {key: _number(parameters.get(key, DEFAULTS[key])) for key in keys}


def keys_for(artifact_type: str) -> tuple[str, ...]:
    return TRUTH_KEYS if artifact_type in TRUTH_ARTIFACTS else POLICY_KEYS


def params_hash(artifact_type: str, parameters: Mapping[str, Any]) -> str:
    """The parameter set an artifact of `artifact_type` was computed with, as a hash."""
    return content_hash(subset(parameters, keys_for(artifact_type)))
