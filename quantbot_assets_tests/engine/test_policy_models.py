"""Policy models: the discriminated union, SEMANTICS validation rules, flattening, canonical JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from quantbot_assets.engine import Policy, parse_policy
from quantbot_assets.engine.policy import (
    Combo,
    FixedStop,
    Ladder,
    TimeStop,
    TrailingStop,
    encode_policy,
)


def test_seed_example_parses_from_text_dict_and_model() -> None:
    text = '{"kind":"fixed_stop","stop_loss_bps":500}'
    from_text = parse_policy(text)
    assert isinstance(from_text, FixedStop)
    assert from_text.stop_loss_bps == 500 and from_text.take_profit_bps is None
    assert parse_policy(json.loads(text)) == from_text
    assert parse_policy(from_text) is from_text
    assert isinstance(from_text, Policy)


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ({"kind": "time_stop", "max_hold_ms": 3_600_000, "take_profit_bps": 10000}, TimeStop),
        (
            {
                "kind": "trailing_stop",
                "activation_bps": 5000,
                "trail_bps": 2000,
                "hard_stop_bps": 0,
            },
            TrailingStop,
        ),
        (
            {
                "kind": "ladder",
                "levels": [{"multiple": 2, "fraction": 0.5}, {"multiple": 3, "fraction": 0.5}],
            },
            Ladder,
        ),
        (
            {
                "kind": "ladder",
                "levels": [{"multiple": 0.5, "fraction": 0}],
                "stop_loss_bps": 9999.99,
            },
            Ladder,
        ),
        ({"kind": "combo", "policies": [{"kind": "fixed_stop", "stop_loss_bps": 0}]}, Combo),
    ],
)
def test_valid_policies(obj: dict, kind: type) -> None:
    assert isinstance(parse_policy(obj), kind)


@pytest.mark.parametrize(
    ("obj", "field"),
    [
        ({"kind": "nope", "stop_loss_bps": 1}, "kind"),
        ({"stop_loss_bps": 1}, "kind"),
        ({"kind": "fixed_stop"}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": -1}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 10000}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 500, "take_profit_bps": -5}, "take_profit_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": 500, "extra": 1}, "extra"),
        ({"kind": "fixed_stop", "stop_loss_bps": True}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": "500"}, "stop_loss_bps"),
        ({"kind": "fixed_stop", "stop_loss_bps": math.nan}, "stop_loss_bps"),
        ({"kind": "time_stop", "max_hold_ms": -1}, "max_hold_ms"),
        ({"kind": "trailing_stop", "activation_bps": 100, "trail_bps": 10000}, "trail_bps"),
        ({"kind": "trailing_stop", "activation_bps": -1, "trail_bps": 100}, "activation_bps"),
        (
            {"kind": "trailing_stop", "activation_bps": 1, "trail_bps": 1, "hard_stop_bps": 10000},
            "hard_stop_bps",
        ),
        ({"kind": "ladder", "levels": []}, "levels"),
        ({"kind": "ladder"}, "levels"),
        ({"kind": "ladder", "levels": [{"multiple": 0, "fraction": 0.5}]}, "multiple"),
        ({"kind": "ladder", "levels": [{"multiple": 2, "fraction": -0.1}]}, "fraction"),
        (
            {
                "kind": "ladder",
                "levels": [{"multiple": 2, "fraction": 0.6}, {"multiple": 3, "fraction": 0.5}],
            },
            "levels",
        ),
        ({"kind": "ladder", "levels": [{"multiple": 2, "fraction": 1, "at": 1}]}, "at"),
        ({"kind": "combo", "policies": []}, "policies"),
        (
            {
                "kind": "combo",
                "policies": [{"kind": "ladder", "levels": [{"multiple": 2, "fraction": 1}]}],
            },
            "ladder",
        ),
        (
            {
                "kind": "combo",
                "policies": [
                    {"kind": "combo", "policies": [{"kind": "fixed_stop", "stop_loss_bps": 1e9}]}
                ],
            },
            "stop_loss_bps",
        ),
    ],
)
def test_invalid_policies_name_the_field(obj: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        parse_policy(obj)


@pytest.mark.parametrize("text", ["{not json", "[1, 2]", "3"])
def test_not_a_json_object(text: str) -> None:
    with pytest.raises(ValueError, match="policy"):
        parse_policy(text)


def test_fractions_within_tolerance_of_one_are_accepted() -> None:
    thirds = [{"multiple": m, "fraction": 0.1 + 0.2} for m in (2, 3)] + [
        {"multiple": 4, "fraction": 0.4}
    ]
    assert isinstance(parse_policy({"kind": "ladder", "levels": thirds}), Ladder)


def test_nested_combos_are_flattened_and_refuse_nested_ladders() -> None:
    pol = parse_policy(
        {
            "kind": "combo",
            "policies": [
                {
                    "kind": "combo",
                    "policies": [
                        {"kind": "fixed_stop", "stop_loss_bps": 500},
                        {"kind": "time_stop", "max_hold_ms": 60000},
                    ],
                },
                {"kind": "trailing_stop", "activation_bps": 100, "trail_bps": 50},
            ],
        }
    )
    assert isinstance(pol, Combo)
    assert [p.kind for p in pol.policies] == ["fixed_stop", "time_stop", "trailing_stop"]
    nested_ladder = {
        "kind": "combo",
        "policies": [
            {
                "kind": "combo",
                "policies": [{"kind": "ladder", "levels": [{"multiple": 2, "fraction": 1}]}],
            }
        ],
    }
    with pytest.raises(ValueError, match="ladder"):
        parse_policy(nested_ladder)


def test_canonical_json_is_stable_and_round_trips() -> None:
    a = parse_policy('{"take_profit_bps": 1000, "stop_loss_bps": 500, "kind": "fixed_stop"}')
    b = parse_policy({"kind": "fixed_stop", "stop_loss_bps": 500.0, "take_profit_bps": 1000})
    assert a.canonical_json() == b.canonical_json()
    assert (
        a.canonical_json() == '{"kind":"fixed_stop","stop_loss_bps":500.0,"take_profit_bps":1000.0}'
    )
    assert parse_policy(a.canonical_json()) == a
    combo = parse_policy(
        {"kind": "combo", "policies": [{"kind": "combo", "policies": [a.model_dump()]}]}
    )
    assert parse_policy(combo.canonical_json()) == combo


def test_encoding_keeps_the_levels_that_win() -> None:
    pol = parse_policy(
        {
            "kind": "combo",
            "policies": [
                {"kind": "fixed_stop", "stop_loss_bps": 800, "take_profit_bps": 5000},
                {"kind": "fixed_stop", "stop_loss_bps": 300, "take_profit_bps": 2000},
                {"kind": "time_stop", "max_hold_ms": 7200000},
                {"kind": "time_stop", "max_hold_ms": 3600000},
                {
                    "kind": "trailing_stop",
                    "activation_bps": 100,
                    "trail_bps": 50,
                    "hard_stop_bps": 900,
                },
            ],
        }
    )
    enc = encode_policy(pol)
    # shortest hold, highest stop level (smallest distance), lowest hard stop distance, lowest TP
    assert enc[:6].tolist() == [3600000, 300, 900, 2000, 1, 0]
    assert enc[6:].tolist() == [100, 50]
    plain = encode_policy(parse_policy({"kind": "fixed_stop", "stop_loss_bps": 500}))
    assert np.isnan(plain[0]) and plain[1] == 500 and np.isnan(plain[2]) and np.isnan(plain[3])
