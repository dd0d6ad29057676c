"""The backtest engine: truth metrics, policy replay, summaries and frontier search over
calls and candles, as plain Python + numpy + numba (no orchestrator imports)."""

from quantbot_assets.engine.candles import PreparedCandles, prepare_candles, resample_candles
from quantbot_assets.engine.frontier import default_grid, search_frontier
from quantbot_assets.engine.policy import Policy, parse_policy
from quantbot_assets.engine.probe import lookahead_probe
from quantbot_assets.engine.replay import simulate_policy
from quantbot_assets.engine.summary import summarize
from quantbot_assets.engine.truth import compute_paths
from quantbot_assets.engine.windows import WINDOW_COMPLETE_PROBE_MS, candle_load_range

__all__ = [
    "WINDOW_COMPLETE_PROBE_MS",
    "Policy",
    "PreparedCandles",
    "candle_load_range",
    "compute_paths",
    "default_grid",
    "lookahead_probe",
    "parse_policy",
    "prepare_candles",
    "resample_candles",
    "search_frontier",
    "simulate_policy",
    "summarize",
]
