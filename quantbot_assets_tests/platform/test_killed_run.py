"""A run killed outright leaves neither marker and a manifest that never says completed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from quantbot_assets.settings import Settings

SCRIPT = textwrap.dedent(
    """
    import dataclasses, sys, time, warnings
    from pathlib import Path
    warnings.filterwarnings("ignore")
    import dagster as dg
    from quantbot_assets.definitions import build_definitions
    from quantbot_assets.resources import CandleSourceResource
    from quantbot_assets.settings import Settings

    class SlowCandles(CandleSourceResource):
        def load(self, keys, start_ms, end_ms):
            Path(sys.argv[2]).write_text("loading")
            time.sleep(120)
            raise AssertionError("should have been killed")

    settings = Settings.from_env()
    settings = dataclasses.replace(settings, calls_path=Path(sys.argv[1]))
    defs = build_definitions(settings)
    resources = dict(defs.resources)
    resources["candle_source"] = SlowCandles(path="unused")
    defs = dg.Definitions(assets=defs.assets, jobs=defs.jobs, resources=resources,
                          executor=dg.in_process_executor)
    with dg.instance_for_test(temp_dir=sys.argv[3]) as instance:
        defs.resolve_job_def("path_only_backtest").execute_in_process(
            partition_key="2024-01-01", instance=instance,
            run_config={"resources": {"params": {"config": {"horizon_ms": 10800000}}}})
    """
)


def test_killed_run_leaves_no_success_marker(tmp_path: Path, settings: Settings, tiny) -> None:
    started = tmp_path / "started"
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "QUANTBOT_PROJECT_DIR": str(tmp_path),
        "QUANTBOT_RUNS_DIR": str(settings.runs_dir),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(tiny.calls), str(started), str(home)],
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not started.exists():
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    [run_dir] = list(settings.runs_dir.glob("*/run_id=*"))
    assert not (run_dir / "_SUCCESS").exists() and not (run_dir / "_FAILED").exists()
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "running"  # the step started, nothing was recorded
    assert manifest["artifacts"] == {}
