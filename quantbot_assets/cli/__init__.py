"""The `quantbot` command (`python -m quantbot_assets.cli`, or the `quantbot` script).

main.py      main(): parse, run, errors and stop signals to exit codes
parser.py    the argparse tree; options.py the options shared by commands,
             validators.py their `type=` checks
inputs.py    options to settings, parameters and days, checked before any run
runtime.py   Dagster definitions and instance; cataloguing finished runs
render.py    output shared by commands (run outcomes, tables)
backtest.py  backtest path-only, policy
search.py    backtest optimize, walk-forward
catalog.py   backtest catalog-sync, catalog-query
run_dirs.py  backtest list, diff
policies.py  policies list | sync | add
runs.py      runs cleanup
dev.py       quickstart, sample-data, dev
"""

from quantbot_assets.cli.main import main

__all__ = ["main"]
