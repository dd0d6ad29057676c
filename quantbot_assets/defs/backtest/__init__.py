"""The `backtest` feature: inputs, truth, policy and optimization assets, their checks, jobs
and partitions."""
