"""Walk-forward frontier: pick a policy of the grid on past days, score it on the days after.

Rolling folds over a range of days: train on `train_days`, test on the `test_days` that
follow, move on by `step_days`. In each fold and for each caller (and `__all__`) the policy
chosen is the frontier's best on the train days (same objective, same constraints, same
ranking: `frontier.score_grid`), and it is scored on the test days. Per caller, the trades
of every fold are pooled: the out-of-sample result of the selection procedure, its gap to
the in-sample one, and whether it holds up (docs/semantics.md, "Walk-forward").

Every policy is replayed on every call once (`frontier.replay_grid`); folds only choose
which calls each score reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from quantbot_assets import schemas
from quantbot_assets.engine.bootstrap import bootstrap_intervals, bootstrap_seed
from quantbot_assets.engine.candles import PreparedCandles
from quantbot_assets.engine.frontier import (
    ALL_CALLERS,
    GridReplay,
    check_scoring,
    default_grid,
    pooled_stats,
    replay_grid,
    score_grid,
)
from quantbot_assets.engine.policy import Policy
from quantbot_assets.params import DEFAULT_HORIZON_MS
from quantbot_assets.schemas import INTERVAL_COLUMNS

WALK_FORWARD_COLUMNS = schemas.WALK_FORWARD.names
DAY_MS = 86_400_000

# Verdicts of a caller's pooled row, checked in this order (docs/semantics.md).
NO_CHOICE = "no_choice"  # no fold had a policy meeting the constraints on its train days
TOO_FEW_TRADES = "too_few_trades"  # pooled out-of-sample trades < min_trades
NOT_ABOVE_MIN = "not_above_min"  # pooled out-of-sample score <= min_oos_score
BELOW_BASELINE = "below_baseline"  # pooled out-of-sample score < the baseline's
HOLDS_UP = "holds_up"


@dataclass(frozen=True)
class Fold:
    """One fold: train and test days, first and last day included."""

    index: int
    train_from: date
    train_to: date
    test_from: date
    test_to: date

    @property
    def test_start_ms(self) -> int:
        return _day_ms(self.test_from)


def _day_ms(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1000)


def _as_date(day: date | str) -> date:
    return day if isinstance(day, date) else date.fromisoformat(day)


def make_folds(
    first_day: date | str,
    last_day: date | str,
    *,
    train_days: int = 14,
    test_days: int = 7,
    step_days: int = 7,
) -> list[Fold]:
    """Every whole fold inside first_day..last_day: fold k trains on the `train_days` days
    from first_day + k * step_days and tests on the `test_days` days after them."""
    if train_days < 1 or test_days < 1 or step_days < 1:
        raise ValueError(
            f"train_days, test_days and step_days must be >= 1, got "
            f"{train_days}, {test_days}, {step_days}"
        )
    first, last = _as_date(first_day), _as_date(last_day)
    folds: list[Fold] = []
    start = first
    while True:
        test_from = start + timedelta(days=train_days)
        test_to = test_from + timedelta(days=test_days - 1)
        if test_to > last:
            return folds
        folds.append(Fold(len(folds), start, test_from - timedelta(days=1), test_from, test_to))
        start += timedelta(days=step_days)


@dataclass
class _Side:
    """The trades one caller's choices made on one side (train or test), pooled over folds."""

    parts: list[tuple[int, np.ndarray]]  # (policy row, call indices) per fold

    def stats(self, replay: GridReplay, objective: str) -> tuple[int, float, float]:
        blocks = [
            np.concatenate([b[p, idx] for p, idx in self.parts]) if self.parts else np.empty(0)
            for b in (
                replay.returns,
                replay.stop_out,
                replay.mae,
                replay.optimistic,
                replay.ambiguous,
            )
        ]
        return pooled_stats(tuple(blocks), objective)

    def returns(self, replay: GridReplay) -> np.ndarray:
        if not self.parts:
            return np.empty(0)
        return np.concatenate([replay.returns[p, idx] for p, idx in self.parts])


def _choose(rows: pd.DataFrame, order: dict[str, int]) -> dict[str, Any] | None:
    """The caller's frontier row of rank 1 (ties: lowest stop-out rate, then grid order)."""
    best = rows[rows["meets_constraints"] & (rows["rank"] == 1)]
    if best.empty:
        return None
    key = best.assign(_grid=best["policy_id"].map(order))
    first = key.sort_values(["stop_out_rate", "_grid"], kind="stable").iloc[0]
    return {str(k): v for k, v in first.items()}


def select_and_score(
    replay: GridReplay,
    folds: list[Fold],
    *,
    baseline_policy_id: str,
    objective: str = "median_return_bps",
    min_trades: int = 20,
    max_stop_out_rate: float = 0.8,
    min_oos_score: float = 0.0,
    horizon_ms: int = DEFAULT_HORIZON_MS,
    run_id: str = "",
) -> pd.DataFrame:
    """Rows of schemas.WALK_FORWARD (without `month`) from a replay of the grid."""
    check_scoring(objective, min_trades, max_stop_out_rate)
    if baseline_policy_id not in replay.policy_ids:
        raise ValueError(
            f"baseline_policy_id: {baseline_policy_id!r} is not a policy of the grid "
            f"(the grid has {len(replay.policy_ids)}, e.g. {replay.policy_ids[:3]})"
        )
    if not folds:
        raise ValueError("no fold: the range is shorter than train_days + test_days")
    order = {pid: i for i, pid in enumerate(replay.policy_ids)}
    base = order[baseline_policy_id]
    ts = replay.alert_ts_ms
    day_start = ts - ts % DAY_MS
    span = (day_start >= _day_ms(folds[0].train_from)) & (day_start <= _day_ms(folds[-1].test_to))
    callers = [ALL_CALLERS, *sorted({str(c) for c in replay.callers[span]})]
    of_caller = {c: replay.callers == c for c in callers[1:]}
    of_caller[ALL_CALLERS] = np.ones(len(ts), bool)
    pooled = {c: (_Side([]), _Side([]), _Side([])) for c in callers}  # train, test, baseline
    rows: list[dict[str, Any]] = []
    for fold in folds:
        in_train = (day_start >= _day_ms(fold.train_from)) & (day_start <= _day_ms(fold.train_to))
        # A train call counts only once its whole window is over when the test days begin:
        # the choice must not read prices of the test days.
        train = in_train & (ts + horizon_ms <= fold.test_start_ms)
        test = (day_start >= _day_ms(fold.test_from)) & (day_start <= _day_ms(fold.test_to))
        train_rows, test_rows = (
            score_grid(
                replay,
                objective=objective,
                min_trades=min_trades,
                max_stop_out_rate=max_stop_out_rate,
                run_id=run_id,
                calls=mask,
            )
            for mask in (train, test)
        )
        by_caller_train = dict(tuple(train_rows.groupby("caller_name", sort=False)))
        by_caller_test = test_rows.set_index(["caller_name", "policy_id"])
        for caller in callers:
            train_idx = np.flatnonzero(train & replay.entered & of_caller[caller])
            test_idx = np.flatnonzero(test & replay.entered & of_caller[caller])
            choice = _choose(by_caller_train[caller], order) if caller in by_caller_train else None
            row: dict[str, Any] = {
                "run_id": run_id,
                "kind": "fold",
                "fold": fold.index,
                "caller_name": caller,
                "train_from": fold.train_from.isoformat(),
                "train_to": fold.train_to.isoformat(),
                "test_from": fold.test_from.isoformat(),
                "test_to": fold.test_to.isoformat(),
                "objective": objective,
                "policy_id": None,
                "policy_params": None,
                "folds": 0,
                "is_trades": len(train_idx),
                "is_score": None,
                "is_stop_out_rate": None,
                "oos_trades": len(test_idx),
                "oos_score": None,
                "oos_stop_out_rate": None,
                "baseline_policy_id": baseline_policy_id,
                "baseline_oos_score": None,
                "baseline_oos_trades": len(test_idx),
                "gap": None,
                "holds_up": None,
                "verdict": None,
            }
            if len(test_idx):
                row["baseline_oos_score"] = by_caller_test.at[
                    (caller, baseline_policy_id), "objective_score"
                ]
            if choice is not None:
                pid = str(choice["policy_id"])
                row.update(
                    policy_id=pid,
                    policy_params=choice["policy_params"],
                    folds=1,
                    is_score=choice["objective_score"],
                    is_stop_out_rate=choice["stop_out_rate"],
                )
                if len(test_idx):
                    row.update(
                        oos_score=by_caller_test.at[(caller, pid), "objective_score"],
                        oos_stop_out_rate=by_caller_test.at[(caller, pid), "stop_out_rate"],
                    )
                    row["gap"] = row["oos_score"] - row["is_score"]
                sides = pooled[caller]
                sides[0].parts.append((order[pid], train_idx))
                sides[1].parts.append((order[pid], test_idx))
                sides[2].parts.append((base, test_idx))
            rows.append(row)
    for caller in callers:
        train_side, test_side, base_side = pooled[caller]
        chosen = len(train_side.parts)
        is_n, is_score, is_so = train_side.stats(replay, objective)
        oos_n, oos_score, oos_so = test_side.stats(replay, objective)
        _, base_score, _ = base_side.stats(replay, objective)
        # how sure: the 90 % bootstrap interval of the pooled out-of-sample trades
        ci = bootstrap_intervals(
            test_side.returns(replay)[None, :],
            bootstrap_seed("walk_forward", replay.run_params, caller),
        )[0]
        verdict = _verdict(chosen, oos_n, oos_score, base_score, min_trades, min_oos_score)
        rows.append(
            {
                "run_id": run_id,
                "kind": "pooled",
                "fold": None,
                "caller_name": caller,
                "train_from": folds[0].train_from.isoformat(),
                "train_to": folds[-1].train_to.isoformat(),
                "test_from": folds[0].test_from.isoformat(),
                "test_to": folds[-1].test_to.isoformat(),
                "objective": objective,
                "policy_id": None,
                "policy_params": None,
                "folds": chosen,
                "is_trades": is_n,
                "is_score": is_score,
                "is_stop_out_rate": is_so,
                "oos_trades": oos_n,
                "oos_score": oos_score,
                "oos_stop_out_rate": oos_so,
                "baseline_policy_id": baseline_policy_id,
                "baseline_oos_score": base_score,
                "baseline_oos_trades": oos_n,
                "gap": oos_score - is_score,
                "holds_up": verdict == HOLDS_UP,
                "verdict": verdict,
                **{
                    f"oos_{name}": None if np.isnan(v) else float(v)
                    for name, v in zip(INTERVAL_COLUMNS, ci, strict=True)
                },
            }
        )
    out = pd.DataFrame(rows, columns=list(schemas.WALK_FORWARD.names))
    out["fold"] = out["fold"].astype("Int64")
    for column in (
        "is_score",
        "is_stop_out_rate",
        "oos_score",
        "oos_stop_out_rate",
        "baseline_oos_score",
        "gap",
        *(f"oos_{name}" for name in INTERVAL_COLUMNS),
    ):
        out[column] = pd.to_numeric(out[column], errors="coerce").astype("float64")
    out["holds_up"] = out["holds_up"].astype("boolean")
    return out


def _verdict(
    chosen: int,
    oos_trades: int,
    oos_score: float,
    baseline_score: float,
    min_trades: int,
    min_oos_score: float,
) -> str:
    if chosen == 0:
        return NO_CHOICE
    if oos_trades < max(min_trades, 1):
        return TOO_FEW_TRADES
    if not oos_score > min_oos_score:
        return NOT_ABOVE_MIN
    if not oos_score >= baseline_score:
        return BELOW_BASELINE
    return HOLDS_UP


def walk_forward(
    alerts: pd.DataFrame,
    candles: pd.DataFrame | PreparedCandles,
    grid: Mapping[str, str | dict[str, Any] | Policy] | None = None,
    *,
    first_day: date | str,
    last_day: date | str,
    train_days: int = 14,
    test_days: int = 7,
    step_days: int = 7,
    baseline_policy_id: str = "time_stop-hold1440m",
    objective: str = "median_return_bps",
    min_trades: int = 20,
    max_stop_out_rate: float = 0.8,
    min_oos_score: float = 0.0,
    interval: str = "1m",
    horizon_ms: int = DEFAULT_HORIZON_MS,
    entry_delay_ms: int = 0,
    fee_bps: float = 0.0,
    slippage_bps: float = 0.0,
    run_id: str = "",
    fine: pd.DataFrame | PreparedCandles | None = None,
) -> pd.DataFrame:
    """Walk-forward rows (schemas.WALK_FORWARD without `month`): one per fold and caller
    (`kind = "fold"`), then one per caller pooled over the folds (`kind = "pooled"`)."""
    folds = make_folds(
        first_day, last_day, train_days=train_days, test_days=test_days, step_days=step_days
    )
    check_scoring(objective, min_trades, max_stop_out_rate)
    grid_ids = list(grid) if grid is not None else list(default_grid())
    if baseline_policy_id not in grid_ids:
        raise ValueError(
            f"baseline_policy_id: {baseline_policy_id!r} is not a policy of the grid "
            f"(e.g. {', '.join(grid_ids[:3])})"
        )
    if not folds:
        raise ValueError(
            f"no fold in {first_day} .. {last_day}: the range is shorter than "
            f"train_days + test_days ({train_days} + {test_days})"
        )
    replay = replay_grid(
        alerts,
        candles,
        grid,
        interval=interval,
        horizon_ms=horizon_ms,
        entry_delay_ms=entry_delay_ms,
        fee_bps=fee_bps,
        slippage_bps=slippage_bps,
        fine=fine,
    )
    return select_and_score(
        replay,
        folds,
        baseline_policy_id=baseline_policy_id,
        objective=objective,
        min_trades=min_trades,
        max_stop_out_rate=max_stop_out_rate,
        min_oos_score=min_oos_score,
        horizon_ms=horizon_ms,
        run_id=run_id,
    )
