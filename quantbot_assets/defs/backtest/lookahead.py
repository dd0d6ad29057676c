"""The lookahead checks: a seeded sample of each run's calls replayed without the bars they
must not read (removed, then replaced by random prices); any changed cell fails the check.

They run inside the steps that compute `paths` and `trades`, before anything is written, and
block: a failed check fails the step, so neither the checked asset nor what follows it in the
run (`summary`) materializes.
"""

from __future__ import annotations

from typing import Any

import dagster as dg
import pandas as pd

from quantbot_assets.engine import Policy
from quantbot_assets.engine.probe import lookahead_probe
from quantbot_assets.params import content_hash
from quantbot_assets.reports import markdown_table

# Calls drawn per partition (all of them when a partition has fewer), and at most
# SAMPLE_PER_RUN per run, shared among its policies but never fewer than SAMPLE_PER_PARTITION
# per policy: the checks test the engine, which is the same code for every day, so a month's
# run of one policy draws 1,000 calls across its days rather than 6,200, and of 6 policies 200
# calls each (the probe costs about 1 ms a call at 5m with drill-down).
SAMPLE_PER_PARTITION = 200
SAMPLE_PER_RUN = 1000


def probe_seed(*parts: object) -> int:
    """Seeded from content: the same run re-checks the same calls."""
    return int(content_hash([str(p) for p in parts]), 16) % (2**32)


def probe_calls(
    calls: pd.DataFrame,
    candles: Any,
    *,
    partitions: int,
    params: dict[str, Any],
    policy_id: str | None = None,
    policy: Policy | None = None,
    fine: Any = None,
    share: float = 1.0,
) -> tuple[pd.DataFrame, int]:
    """(changed cells, calls sampled) of one group of calls and, maybe, one policy; `share`
    is this probe's part of the run's SAMPLE_PER_RUN (1 / policies x the group's share of
    the run's days)."""
    if calls.empty:
        return pd.DataFrame(), 0
    budget = max(SAMPLE_PER_PARTITION, int(SAMPLE_PER_RUN * share))
    sample = min(len(calls), SAMPLE_PER_PARTITION * max(1, partitions), budget)
    found = lookahead_probe(
        calls,
        candles,
        policy,
        policy_id=policy_id or "probe",
        fine=fine,
        sample_size=sample,
        seed=probe_seed(policy_id, sample, *calls["call_id"].iloc[:3]),
        interval=params["interval"],
        horizon_ms=params["horizon_ms"],
        entry_delay_ms=params["entry_delay_ms"],
        activity_move_bps=params["activity_move_bps"],
        fee_bps=params["fee_bps"],
        slippage_bps=params["slippage_bps"],
        check_paths=policy is None,  # the truth step probes paths itself
    )
    return found, sample


def lookahead_check_result(
    asset: str, found: list[pd.DataFrame], sampled: int
) -> dg.AssetCheckResult:
    nonempty = [f for f in found if len(f)]
    cells = pd.concat(nonempty, ignore_index=True) if nonempty else None
    changed = 0 if cells is None else len(cells)
    metadata: dict[str, Any] = {"calls_sampled": sampled, "changed_cells": changed}
    if changed and cells is not None:
        metadata["first_changes"] = dg.MetadataValue.md(markdown_table(cells, max_rows=20))
    return dg.AssetCheckResult(
        asset_key=asset,
        check_name=f"{asset}_no_lookahead",
        passed=changed == 0,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def lookahead_spec(asset: str) -> dg.AssetCheckSpec:
    layer = "window's end" if asset == "paths" else "trade's exit"
    return dg.AssetCheckSpec(
        f"{asset}_no_lookahead",
        asset=asset,
        blocking=True,
        description=(
            f"A seeded sample of calls ({SAMPLE_PER_PARTITION} per partition; a run draws at "
            f"most {SAMPLE_PER_RUN}, and at least {SAMPLE_PER_PARTITION} per policy) gives the same "
            f"{asset} with every candle after the {layer} removed, or replaced by random prices."
        ),
    )


def raise_if_failed(result: dg.AssetCheckResult) -> None:
    if not result.passed:
        changed = (result.metadata or {}).get("changed_cells")
        raise dg.Failure(
            f"{result.check_name} failed: {getattr(changed, 'value', changed)} cells changed "
            "when bars after what a call may read were removed or randomized"
        )
