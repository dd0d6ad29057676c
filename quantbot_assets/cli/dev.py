"""`quantbot quickstart`, `sample-data` and `dev`: getting started and the web UI."""

from __future__ import annotations

import argparse

from quantbot_assets.cli.inputs import settings_from_args

QUICKSTART_WEEK = ["--from", "2024-01-01", "--to", "2024-01-07", "--interval", "1m"]
QUICKSTART_POLICIES = ("fixed-stop-5pct", "trailing-30pct-after-50pct")


def cmd_quickstart(args: argparse.Namespace) -> int:
    """Sample data, a path-only week and two policy weeks, then the catalog."""
    from quantbot_assets.cli.main import main
    from quantbot_assets.sample_data import ensure_sample_data

    settings = settings_from_args(args)
    data = ensure_sample_data(settings.data_dir)
    print(f"sample data: {data.alerts_db} and {data.candles_dir}")
    common = list(QUICKSTART_WEEK)
    if args.runs_dir:
        common += ["--runs-dir", args.runs_dir]
    code = main(["backtest", "path-only", *common])
    for policy_id in QUICKSTART_POLICIES:
        code = max(code, main(["backtest", "policy", "--policy-id", policy_id, *common]))
    sync = ["backtest", "catalog-sync", "--stats"]
    if args.runs_dir:
        sync += ["--base-dir", args.runs_dir]
    code = max(code, main(sync))
    print(f"\nRun directories: {settings.runs_dir}/<YYYY-MM>/run_id=<id>/")
    print("Next: `quantbot backtest catalog-query --limit 10`, `quantbot dev` for the web UI.")
    return code


def cmd_sample_data(args: argparse.Namespace) -> int:
    from quantbot_assets.sample_data import ensure_sample_data, generate_sample_data

    settings = settings_from_args(args)
    data = (
        generate_sample_data(settings.data_dir)
        if args.force
        else ensure_sample_data(settings.data_dir)
    )
    print(f"calls:   {data.alerts_db}\ncandles: {data.candles_dir}")
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    """The Dagster web UI and daemon; a port in use is PortTaken (one line, exit 2)."""
    from quantbot_assets.dev_server import run_dev

    return run_dev(settings_from_args(args), host=args.host, port=args.port)
