"""Properties over generated price paths (hypothesis, derandomized): what must hold
for any clean candles and any valid policy, whatever the numbers. The strategies
here also feed the random-policy comparison in test_reference_compare."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from quantbot_assets_tests.engine.conftest import BASE, CHAIN, REFERENCE, Impl, M, engine_impl

SETTINGS = settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    # No shrinking: a failing engine call repeated hundreds of times would make the
    # suite slow exactly when it fails; the unshrunk example is still printed.
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
)
MINTS = ("MA", "MB")


CORRUPTIONS = [None] * 8 + ["open_nan", "open_zero", "high_nan", "low_negative", "high_below_low"]


@st.composite
def market(draw: st.DrawFn, corrupt: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two mints of clean bars (open and close inside [low, high]) with gaps, pumps
    and rugs, and a few calls on each from two callers. `corrupt`: some bars get a
    malformed open, high or low (never the close)."""
    frames, calls = [], []
    for mint in MINTS:
        n = draw(st.integers(1, 25))
        minute, price = 0, draw(st.floats(0.001, 100.0))
        rows = []
        for _ in range(n):
            minute += draw(st.sampled_from([1, 1, 1, 2, 4]))
            o = price * draw(st.sampled_from([1.0, 1.0, 0.7, 1.5]))  # gaps at the open
            c = o * draw(st.floats(0.3, 3.5))
            h = max(o, c) * (1 + draw(st.floats(0.0, 2.0)))
            lo = min(o, c) * (1 - draw(st.floats(0.0, 0.6)))
            kind = draw(st.sampled_from(CORRUPTIONS)) if corrupt else None
            if kind == "open_nan":
                o = float("nan")
            elif kind == "open_zero":
                o = 0.0
            elif kind == "high_nan":
                h = float("nan")
            elif kind == "low_negative":
                lo = -lo
            elif kind == "high_below_low":
                h, lo = lo * 0.9, h * 1.1
            rows.append((BASE + minute * M, o, h, lo, c))
            price = c
        frames.append(
            pd.DataFrame(rows, columns=["ts_ms", "open", "high", "low", "close"]).assign(
                chain=CHAIN, mint=mint, interval="1m", volume=1.0
            )
        )
        for k in range(draw(st.integers(1, 3))):
            at = BASE + draw(st.integers(0, minute + 1)) * M + draw(st.sampled_from([0, 1, 30_000]))
            calls.append((f"{mint}-{k}", mint, draw(st.sampled_from(["ann", "bo"])), at))
    alerts = pd.DataFrame(calls, columns=["call_id", "mint", "caller_name", "alert_ts_ms"]).assign(
        chain=CHAIN, created_at=""
    )
    candles = pd.concat(frames, ignore_index=True)[
        ["chain", "mint", "interval", "ts_ms", "open", "high", "low", "close", "volume"]
    ]
    return alerts[["call_id", "mint", "caller_name", "chain", "alert_ts_ms", "created_at"]], candles


bps = st.integers(0, 9999)
gain_bps = st.integers(0, 30000)


def simple_policy() -> st.SearchStrategy[dict[str, Any]]:
    fixed = st.builds(
        lambda s, t: {
            "kind": "fixed_stop",
            "stop_loss_bps": s,
            **({} if t is None else {"take_profit_bps": t}),
        },
        bps,
        st.none() | gain_bps,
    )
    time_stop = st.builds(
        lambda h, t: {
            "kind": "time_stop",
            "max_hold_ms": h * M,
            **({} if t is None else {"take_profit_bps": t}),
        },
        st.integers(0, 20),
        st.none() | gain_bps,
    )
    trailing = st.builds(
        lambda a, tr, hs: {
            "kind": "trailing_stop",
            "activation_bps": a,
            "trail_bps": tr,
            **({} if hs is None else {"hard_stop_bps": hs}),
        },
        gain_bps,
        bps,
        st.none() | bps,
    )
    return st.one_of(fixed, time_stop, trailing)


@st.composite
def ladder(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 4))
    fractions = [draw(st.floats(0.01, 1.0)) for _ in range(n)]
    total = sum(fractions)
    if total > 1 or draw(st.booleans()):
        # complete (sum within 1e-9 of 1) but never over 1 by a rounding error
        fractions = [f * (1 - 1e-12) / total for f in fractions]
    levels = [{"multiple": draw(st.floats(0.5, 5.0)), "fraction": f} for f in fractions]
    policy: dict[str, Any] = {"kind": "ladder", "levels": levels}
    if draw(st.booleans()):
        policy["stop_loss_bps"] = draw(bps)
    return policy


policies = st.one_of(
    simple_policy(),
    ladder(),
    st.builds(
        lambda ps: {"kind": "combo", "policies": ps},
        st.lists(simple_policy(), min_size=1, max_size=3),
    ),
)

IMPLS = ["reference", "engine"]


def get(name: str) -> Impl:
    return REFERENCE if name == "reference" else engine_impl()


@pytest.mark.parametrize("impl_name", IMPLS)
@SETTINGS
@given(
    data=market(),
    policy=policies,
    fee=st.sampled_from([0.0, 10.0]),
    slip=st.sampled_from([0.0, 50.0]),
)
def test_no_gain_above_the_peak_and_tail_capture_at_most_one(
    impl_name: str, data: tuple[pd.DataFrame, pd.DataFrame], policy: dict, fee: float, slip: float
) -> None:
    impl = get(impl_name)
    alerts, candles = data
    paths, excluded = impl.compute_paths(alerts, candles)
    trades = impl.simulate_policy(
        alerts, candles, policy, policy_id="p", fee_bps=fee, slippage_bps=slip
    )
    assert sorted(trades["call_id"]) == sorted(paths["call_id"])  # one trade per entered call
    assert len(paths) + len(excluded) == len(alerts)
    peak = paths.set_index("call_id")["peak_multiple"]
    for t in trades.itertuples():
        gross = (t.exit_px / t.entry_px - 1) * 10000  # before fees
        ceiling = (float(peak[t.call_id]) - 1) * 10000
        assert gross <= ceiling + 1e-6 * max(1.0, abs(ceiling)), (t.call_id, gross, ceiling)
        if not pd.isna(t.tail_capture):
            assert t.tail_capture <= 1 + 1e-9
        assert t.max_adverse_excursion_bps <= 0
        assert t.entry_ts_ms <= t.exit_ts_ms
        assert t.stop_out == (t.exit_reason in ("stop_loss", "hard_stop", "trailing_stop"))


@pytest.mark.parametrize("impl_name", IMPLS)
@SETTINGS
@given(
    data=market(corrupt=True),
    policy=policies,
    fee=st.sampled_from([0.0, 30.0, 2000.0]),
    slip=st.sampled_from([0.0, 50.0]),
    interval=st.sampled_from(["1m", "5m", "15m"]),
)
def test_ambiguity_bounds(
    impl_name: str,
    data: tuple[pd.DataFrame, pd.DataFrame],
    policy: dict,
    fee: float,
    slip: float,
    interval: str,
) -> None:
    # pessimistic <= optimistic (equal unless ambiguous); no return below -10000 whatever the
    # fee; at 1m nothing is ever resolved by a drill-down; resolved trades are not ambiguous.
    impl = get(impl_name)
    alerts, candles = data
    if interval != "1m" and impl_name == "reference":
        # the reference leaves resampling of malformed 1m bars unspecified
        candles = candles.dropna()
        candles = candles[(candles[["open", "high", "low"]] > 0).all(axis=1)]
        candles = candles[candles["high"] >= candles["low"]]
    trades = impl.simulate_policy(
        alerts,
        candles,
        policy,
        policy_id="p",
        interval=interval,
        fee_bps=fee,
        slippage_bps=slip,
        fine=candles,
    )
    for t in trades.itertuples():
        r, opt = t.realized_return_bps, t.optimistic_return_bps
        assert r >= -10000.0 and opt >= -10000.0, (t.call_id, r, opt)
        assert opt >= r - 1e-9 * max(1.0, abs(r)), (t.call_id, r, opt)
        if not t.ambiguous:
            assert opt == r, t.call_id
        assert not (t.ambiguous and t.ambiguity_resolved), t.call_id
        if interval == "1m":
            assert not t.ambiguity_resolved, t.call_id


@pytest.mark.parametrize("impl_name", IMPLS)
@SETTINGS
@given(data=market(), policy=policies, interval=st.sampled_from(["5m", "15m"]))
def test_drill_down_changes_only_ambiguous_trades(
    impl_name: str, data: tuple[pd.DataFrame, pd.DataFrame], policy: dict, interval: str
) -> None:
    impl = get(impl_name)
    alerts, candles = data
    kw: dict[str, Any] = {"policy_id": "p", "interval": interval, "fee_bps": 10.0}
    plain = impl.simulate_policy(alerts, candles, policy, **kw).set_index("call_id")
    drilled = impl.simulate_policy(alerts, candles, policy, fine=candles, **kw).set_index("call_id")
    assert sorted(plain.index) == sorted(drilled.index)
    assert not plain["ambiguity_resolved"].any()
    for call_id, before in plain.iterrows():
        after = drilled.loc[call_id]
        if not before["ambiguous"]:
            for col in plain.columns:
                b, a = before[col], after[col]
                assert (pd.isna(b) and pd.isna(a)) or b == a, (call_id, col, b, a)
        else:
            # the exit bar stays the coarse bar; either resolved or still ambiguous
            assert after["exit_ts_ms"] == before["exit_ts_ms"], call_id
            assert after["ambiguous"] != after["ambiguity_resolved"], call_id
            if after["ambiguous"]:  # not resolved: the coarse result stands
                for col in plain.columns:
                    b, a = before[col], after[col]
                    assert (pd.isna(b) and pd.isna(a)) or b == a, (call_id, col, b, a)


@pytest.mark.parametrize("impl_name", IMPLS)
@SETTINGS
@given(
    data=market(),
    stops=st.lists(bps, min_size=2, max_size=2, unique=True),
    tp=st.none() | gain_bps,
)
def test_a_tighter_stop_never_exits_later(
    impl_name: str, data: tuple[pd.DataFrame, pd.DataFrame], stops: list[int], tp: int | None
) -> None:
    impl = get(impl_name)
    alerts, candles = data
    tight_bps, loose_bps = sorted(stops)  # fewer bps = a higher stop level = tighter

    def run(sl: int) -> pd.DataFrame:
        policy: dict[str, Any] = {"kind": "fixed_stop", "stop_loss_bps": sl}
        if tp is not None:
            policy["take_profit_bps"] = tp
        return impl.simulate_policy(alerts, candles, policy, policy_id=str(sl)).set_index("call_id")

    tight, loose = run(tight_bps), run(loose_bps)
    for call_id in loose.index:
        t, lo = tight.loc[call_id], loose.loc[call_id]
        assert t["exit_ts_ms"] <= lo["exit_ts_ms"], call_id
        if lo["stop_out"]:
            assert t["stop_out"], call_id


@settings(SETTINGS, max_examples=12)
@given(data=market(), grid=st.lists(policies, min_size=1, max_size=2))
def test_grid_equals_one_by_one_replays(
    data: tuple[pd.DataFrame, pd.DataFrame], grid: list[dict[str, Any]]
) -> None:
    from quantbot_assets.engine import parse_policy, search_frontier, simulate_policy, summarize

    alerts, candles = data
    by_id = {f"g{i}": parse_policy(p) for i, p in enumerate(grid)}
    frontier = search_frontier(alerts, candles, by_id, min_trades=1).set_index(
        ["caller_name", "policy_id"]
    )
    _, excluded_all = engine_impl().compute_paths(alerts, candles)
    for pid, policy in by_id.items():
        trades = simulate_policy(alerts, candles, policy, policy_id=pid)
        if trades.empty:
            continue
        groups = {"__all__": trades, **dict(iter(trades.groupby("caller_name")))}
        for caller, group in groups.items():
            summary = summarize(
                group.reset_index(drop=True),
                len(group) + _excluded_for(caller, alerts, excluded_all),
                _excluded_for(caller, alerts, excluded_all),
            ).iloc[0]
            row = frontier.loc[(caller, pid)]
            assert int(row["trades_count"]) == int(summary["trades_count"])
            for col in ("avg_return_bps", "median_return_bps", "stop_out_rate"):
                assert _same(row[col], summary[col]), (caller, pid, col)
            assert _same(
                row["avg_max_adverse_excursion_bps"], summary["avg_max_adverse_excursion_bps"]
            )


def _excluded_for(caller: str, alerts: pd.DataFrame, excluded: pd.DataFrame) -> int:
    ids = set(excluded["call_id"])
    mine = alerts if caller == "__all__" else alerts[alerts["caller_name"] == caller]
    return sum(1 for c in mine["call_id"] if c in ids)


def _same(a: object, b: object) -> bool:
    """Exact equality, with null equal to null."""
    if pd.isna(a) or pd.isna(b):  # type: ignore[arg-type]
        return bool(pd.isna(a) and pd.isna(b))  # type: ignore[arg-type]
    return a == b


def test_grid_equals_one_by_one_replays_on_many_calls() -> None:
    # Enough trades per row (a few hundred) that any difference in how means and
    # medians are summed shows, which a handful of hypothesis calls cannot.
    from quantbot_assets.engine import parse_policy, search_frontier, simulate_policy, summarize

    rng = np.random.default_rng(3)
    rows, calls = [], []
    for i in range(60):
        mint, price = f"M{i}", float(rng.uniform(0.1, 10))
        for minute in range(40):
            o = price
            c = o * float(np.exp(rng.normal(0, 0.08)))
            h = max(o, c) * float(np.exp(abs(rng.normal(0, 0.05))))
            lo = min(o, c) * float(np.exp(-abs(rng.normal(0, 0.05))))
            rows.append((CHAIN, mint, "1m", BASE + minute * M, o, h, lo, c, 1.0))
            price = c
        for k in range(6):
            at = BASE + int(rng.integers(0, 30)) * M
            calls.append((f"{mint}-{k}", mint, ["ann", "bo"][k % 2], CHAIN, at, ""))
    candles = pd.DataFrame(
        rows,
        columns=["chain", "mint", "interval", "ts_ms", "open", "high", "low", "close", "volume"],
    )
    alerts = pd.DataFrame(
        calls, columns=["call_id", "mint", "caller_name", "chain", "alert_ts_ms", "created_at"]
    )
    grid = {
        "fs": parse_policy({"kind": "fixed_stop", "stop_loss_bps": 1500, "take_profit_bps": 2500}),
        "tr": parse_policy({"kind": "trailing_stop", "activation_bps": 500, "trail_bps": 800}),
    }
    frontier = search_frontier(alerts, candles, grid, min_trades=1).set_index(
        ["caller_name", "policy_id"]
    )
    for pid, policy in grid.items():
        trades = simulate_policy(alerts, candles, policy, policy_id=pid)
        groups = {"__all__": trades, **dict(iter(trades.groupby("caller_name")))}
        for caller, group in groups.items():
            summary = summarize(group.reset_index(drop=True), len(group), 0).iloc[0]
            row = frontier.loc[(caller, pid)]
            assert int(row["trades_count"]) == int(summary["trades_count"]) > 100
            for col in (
                "avg_return_bps",
                "median_return_bps",
                "stop_out_rate",
                "avg_max_adverse_excursion_bps",
            ):
                assert _same(row[col], summary[col]), (caller, pid, col, row[col], summary[col])
