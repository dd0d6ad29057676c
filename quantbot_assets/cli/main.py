"""`main()`: parse, run the command's handler, turn errors and stop signals into exit codes.

- QuantbotError (errors.py): `error: <first line>` on stderr, its exit code (2; 1 when
  a lookup found nothing);
- SIGINT, SIGTERM, SIGHUP: the current run is marked failed, exit 130, 143, 129
  (signals.py);
- anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import warnings
from collections.abc import Callable, Sequence

from quantbot_assets.cli.parser import build_parser
from quantbot_assets.errors import QuantbotError

ERROR_PREFIX = "error: "


def main(argv: Sequence[str] | None = None) -> int:
    # Start-up (Dagster, the definitions, the instance) allocates millions of objects that
    # live as long as the process; full collections among them cost about 0.5 s. The first
    # run's executor freezes them and turns collection back on (executor.py). Only as the
    # `quantbot` process itself (argv None), never inside a caller's process.
    if argv is None:
        gc.disable()
    # Dagster's beta/preview notices are for developers, not for command output.
    warnings.filterwarnings("ignore", module="dagster")
    warnings.filterwarnings("ignore", message=".*(beta|preview|superseded).*", category=Warning)
    from quantbot_assets.signals import Interrupted, stop_signals

    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        with stop_signals():
            return func(args)
    except QuantbotError as exc:
        say(f"{ERROR_PREFIX}{exc.line}")
        return exc.exit_code
    except Interrupted as exc:
        say(f"quantbot: stopped by {exc}; the current run is marked failed")
        return exc.exit_code
    except KeyboardInterrupt:
        say("quantbot: interrupted; the current run is marked failed")
        return 130


def say(line: str) -> None:
    """One line to stderr, even when the terminal is gone (SIGHUP)."""
    with contextlib.suppress(OSError, ValueError):
        print(line, file=sys.stderr)
