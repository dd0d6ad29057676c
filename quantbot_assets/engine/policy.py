"""Exit policies: pydantic models (a union discriminated on `kind`), parsing, canonical JSON
and the flat numeric encoding the replay kernel reads.

Validation follows docs/semantics.md "Fine points": stop-like fields in [0, 10000), other numeric
fields >= 0, ladder multiples > 0, ladder fractions summing to at most 1, unknown kinds and
unknown fields rejected, combos flattened and refusing ladders.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal

import numpy as np
import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

# Tolerance for "fractions sum to 1" (SEMANTICS: within 1e-9).
FRACTION_TOLERANCE = 1e-9

# Numbers must be real JSON numbers: no booleans, no numeric strings, no NaN/inf.
_Num = Annotated[float, Field(strict=True, allow_inf_nan=False)]
_NonNeg = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0)]
_StopBps = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=0, lt=10000)]


class Policy(BaseModel):
    """Base of every policy kind; `parse_policy` builds the right subclass from JSON."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def canonical_json(self) -> str:
        """Stable JSON (sorted keys, no unset optionals) for hashing and recording."""
        return json.dumps(
            self.model_dump(mode="json", exclude_none=True), sort_keys=True, separators=(",", ":")
        )


class FixedStop(Policy):
    kind: Literal["fixed_stop"] = "fixed_stop"
    stop_loss_bps: _StopBps
    take_profit_bps: _NonNeg | None = None


class TimeStop(Policy):
    kind: Literal["time_stop"] = "time_stop"
    max_hold_ms: _NonNeg
    take_profit_bps: _NonNeg | None = None


class TrailingStop(Policy):
    kind: Literal["trailing_stop"] = "trailing_stop"
    activation_bps: _NonNeg
    trail_bps: _StopBps
    hard_stop_bps: _StopBps | None = None


class LadderLevel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    multiple: Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0)]
    fraction: _NonNeg


class Ladder(Policy):
    kind: Literal["ladder"] = "ladder"
    levels: Annotated[list[LadderLevel], Field(min_length=1)]
    stop_loss_bps: _StopBps | None = None

    @field_validator("levels")
    @classmethod
    def _fractions_at_most_one(cls, levels: list[LadderLevel]) -> list[LadderLevel]:
        total = math.fsum(level.fraction for level in levels)
        if total > 1.0 + FRACTION_TOLERANCE:
            raise ValueError(f"fractions sum to {total}, more than 1")
        return levels


class Combo(Policy):
    kind: Literal["combo"] = "combo"
    policies: Annotated[
        list[
            Annotated[
                FixedStop | TimeStop | TrailingStop | Ladder | Combo, Field(discriminator="kind")
            ]
        ],
        Field(min_length=1),
    ]

    @field_validator("policies")
    @classmethod
    def _flatten(cls, policies: list[Policy]) -> list[Policy]:
        flat: list[Policy] = []
        for i, sub in enumerate(policies):
            if isinstance(sub, Ladder):
                raise ValueError(f"policies[{i}]: a combo cannot contain a ladder")
            if isinstance(sub, Combo):
                flat.extend(sub.policies)  # already flattened by its own validation
            else:
                flat.append(sub)
        return flat


AnyPolicy = Annotated[
    FixedStop | TimeStop | TrailingStop | Ladder | Combo, Field(discriminator="kind")
]
_ADAPTER: pydantic.TypeAdapter[Policy] = pydantic.TypeAdapter(AnyPolicy)


def _describe(err: pydantic.ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"])
        if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
            loc = f"{loc}.kind" if loc else "kind"
        loc = loc or "policy"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


MAX_POLICY_DEPTH = 8  # combos inside combos, counting the outermost policy as 1


def _check_depth(obj: Any) -> None:
    """Refuse combos nested deeper than MAX_POLICY_DEPTH (iteratively: no recursion)."""
    stack: list[tuple[Any, int, str]] = [(obj, 1, "policy")]
    while stack:
        node, depth, where = stack.pop()
        if not isinstance(node, dict):
            continue
        if depth > MAX_POLICY_DEPTH:
            raise ValueError(
                f"invalid policy: {where}: combos nested more than {MAX_POLICY_DEPTH} deep"
            )
        subs = node.get("policies")
        if isinstance(subs, list):
            path = "policies" if where == "policy" else f"{where}.policies"
            stack.extend((sub, depth + 1, f"{path}[{i}]") for i, sub in enumerate(subs))


def parse_policy(obj: str | dict[str, Any] | Policy) -> Policy:
    """Validate a policy given as JSON text, a dict or a model; ValueError names the field."""
    if isinstance(obj, Policy):
        return obj
    if isinstance(obj, str):
        try:
            obj = json.loads(obj)
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid policy JSON: {exc}") from None
        except RecursionError:
            raise ValueError(
                f"invalid policy JSON: nested too deep (combos: at most {MAX_POLICY_DEPTH})"
            ) from None
    if not isinstance(obj, dict):
        raise ValueError(f"invalid policy: expected a JSON object, got {type(obj).__name__}")
    if "kind" not in obj:
        raise ValueError("invalid policy: kind: field required")
    _check_depth(obj)
    try:
        return _ADAPTER.validate_python(obj)
    except pydantic.ValidationError as exc:
        raise ValueError(f"invalid policy: {_describe(exc)}") from None


# ---- flat numeric encoding for the replay kernel -------------------------------------------
# [time_stop_ms, stop_loss_bps, hard_stop_bps, take_profit_bps, n_trail, n_ladder,
#  (activation_bps, trail_bps) * n_trail, (multiple, fraction) * n_ladder]; NaN = absent.
ENC_HEADER = 6


def _min_or_nan(values: list[float]) -> float:
    return min(values) if values else math.nan


def encode_policy(policy: Policy) -> np.ndarray:
    """Flatten a policy into the float64 vector the replay kernel reads."""
    leaves: list[Policy] = list(policy.policies) if isinstance(policy, Combo) else [policy]
    holds: list[float] = []
    stops: list[float] = []
    hards: list[float] = []
    tps: list[float] = []
    trails: list[tuple[float, float]] = []
    ladder: list[tuple[float, float]] = []
    for leaf in leaves:
        if isinstance(leaf, FixedStop):
            stops.append(leaf.stop_loss_bps)
            if leaf.take_profit_bps is not None:
                tps.append(leaf.take_profit_bps)
        elif isinstance(leaf, TimeStop):
            holds.append(leaf.max_hold_ms)
            if leaf.take_profit_bps is not None:
                tps.append(leaf.take_profit_bps)
        elif isinstance(leaf, TrailingStop):
            trails.append((leaf.activation_bps, leaf.trail_bps))
            if leaf.hard_stop_bps is not None:
                hards.append(leaf.hard_stop_bps)
        elif isinstance(leaf, Ladder):
            ladder.extend((lv.multiple, lv.fraction) for lv in leaf.levels)
            if leaf.stop_loss_bps is not None:
                stops.append(leaf.stop_loss_bps)
        else:  # pragma: no cover - the union is closed
            raise TypeError(type(leaf))
    # The lowest stop distance is the highest stop level (the one that wins); the lowest
    # take-profit level fires first; the shortest hold fires first.
    head = [
        _min_or_nan(holds),
        _min_or_nan(stops),
        _min_or_nan(hards),
        _min_or_nan(tps),
        float(len(trails)),
        float(len(ladder)),
    ]
    body = [x for pair in trails for x in pair] + [x for pair in ladder for x in pair]
    return np.asarray(head + body, dtype=np.float64)
