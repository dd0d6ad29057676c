"""The web UI at work: single-run backfills through `quantbot dev`, and a large partition space.

    python bench/ui_bench.py            # the month x 1 policy, 6 vs 100 policies (15-20 min)
    python bench/ui_bench.py --quick    # 7 days, 6 vs 20 policies (a smoke run)

Starts its own `quantbot dev` (webserver + daemon on 127.0.0.1) in a throw-away
project whose calls and candles are the sample data (QUANTBOT_CALLS /
QUANTBOT_CANDLES point at --data-dir; runs, catalog, exports and the Dagster
instance stay in the temp project), and stops it with SIGTERM at the end
(SIGKILL of its own process groups if anything fails).

1. Backfills launched as the UI's "Materialize" dialog does (GraphQL
   `launchPartitionBackfill` with the partition keys), each with the run config
   the CLI uses for the seeds' commands: {"resources": {"params": {"config":
   {"interval": "5m"}}}}. In order, on a fresh instance:
     a. trades,summary over the month x fixed-stop-5pct, no truth layer yet
        (the truth layer is computed inside the policy run);
     b. alerts,paths,errors over 7 days;
     c. alerts,paths,errors over the month;
     d. trades,summary over the month x fixed-stop-5pct again (truth reused from c).
   For each: the runs it made, and the times from the launch: until the backfill
   daemon created the first run (under `quantbot dev` it looks every 3 s,
   quantbot_assets/dev_daemon.py; Dagster's own daemon every 30 s), until the
   run started (queue + run worker start-up), until the runs finished (the issue's figure; target <= 30 s for
   the month x 1 policy), until the backfill was marked complete (the daemon's
   next tick). Between backfills the bench waits until the run catalog sensor's
   catalog run has finished too, so they do not overlap.
2. A growing partition space: the asset page of `trades` (Overview and
   Partitions tabs) loaded in headless chromium until its content shows, and
   every GraphQL query the page sends (captured from the page's own fetch
   calls) replayed and timed directly, with the registry's 6 policies and
   then with 100 (6 + fixed_stop with stop_loss_bps 100, 200, ...), i.e.
   100 x every day since 2024-01-01 (about 106,000 partitions), registered with
   `quantbot policies sync`. Then a month x 1 policy backfill again, with
   100 policies registered. A screenshot of each page goes to --out.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import requests

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))  # the e2e helpers live in the tests package

from quantbot_assets.policy_registry import add_policy  # noqa: E402
from quantbot_assets.sample_data import ensure_sample_data  # noqa: E402
from quantbot_assets_tests.e2e.browser import CHROMIUM, Chromium  # noqa: E402
from quantbot_assets_tests.e2e.dagster_api import (  # noqa: E402
    FINISHED_BACKFILL,
    DagsterGraphQL,
    poll,
)
from quantbot_assets_tests.e2e.dagster_ui import dismiss_community_dialog  # noqa: E402
from quantbot_assets_tests.e2e.dev_process import DevServer, Project  # noqa: E402

POLICY = "fixed-stop-5pct"
RUN_CONFIG = {"resources": {"params": {"config": {"interval": "5m"}}}}
TARGET_MONTH_BACKFILL_S = 30.0
TARGET_PAGE_CONTENT_S = 5.0  # "usable": the asset page's content shows within this
TRUTH = ["alerts", "paths", "errors"]
POLICY_ASSETS = ["trades", "summary"]
ACTIVE_RUN_STATUSES = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"]

BACKFILL_RUNS = """
query BackfillRuns($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      status
      numPartitions
      error { message }
      runs {
        id status creationTime startTime endTime tags { key value }
        stepStats { stepKey startTime endTime }
      }
    }
    ... on PythonError { message }
  }
}
"""

ACTIVE_RUNS = """
query ActiveRuns($statuses: [RunStatus!]) {
  runsOrError(filter: {statuses: $statuses}) { ... on Runs { results { id status } } }
}
"""

# Records every GraphQL request the page makes: operation, body, start/end (ms since
# navigation), response size, and how many are in flight.
FETCH_HOOK = r"""
window.__gql = []; window.__inflight = 0;
const __fetch = window.fetch;
window.fetch = async function(input, init) {
  const url = (typeof input === 'string') ? input : (input && input.url) || '';
  if (!url.includes('graphql')) return __fetch.apply(this, arguments);
  const entry = {url, t0: performance.now(), t1: null, bytes: 0,
                 body: (init && typeof init.body === 'string') ? init.body : null};
  window.__gql.push(entry); window.__inflight += 1;
  try {
    const reply = await __fetch.apply(this, arguments);
    reply.clone().text().then(
      t => { entry.bytes = t.length; entry.t1 = performance.now(); window.__inflight -= 1; },
      () => { entry.t1 = performance.now(); window.__inflight -= 1; });
    return reply;
  } catch (e) { entry.t1 = performance.now(); window.__inflight -= 1; throw e; }
};
"""


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return load()


def day_list(first: date, days: int) -> list[str]:
    return [(first + timedelta(days=i)).isoformat() for i in range(days)]


@dataclass
class BackfillFigures:
    label: str
    partitions: int
    status: str
    runs: list[dict[str, Any]]
    launch_s: float  # the mutation's own latency
    first_run_s: float  # launch -> the daemon created the first run
    first_start_s: float  # launch -> the first run started
    finished_s: float  # launch -> the last run ended (the target's figure)
    complete_s: float  # launch -> backfill status terminal (seen by polling)
    run_s: list[float]  # each run's start -> end
    step_s: list[float]  # each run's steps, start -> end
    load: str

    def lines(self) -> list[str]:
        statuses = ",".join(sorted({r["status"] for r in self.runs})) or "-"
        ranges = [
            f"{_tag(r, 'dagster/asset_partition_range_start')}..{_tag(r, 'dagster/asset_partition_range_end')}"
            for r in self.runs
        ]
        return [
            f"{self.label}",
            f"    partitions {self.partitions}, runs {len(self.runs)} ({statuses}; "
            f"{', '.join(ranges)}), backfill {self.status}",
            f"    launch mutation {self.launch_s:6.2f} s | first run created +{self.first_run_s:6.2f} s"
            f" | started +{self.first_start_s:6.2f} s | run(s) {' + '.join(f'{s:.2f}' for s in self.run_s)} s"
            f" (its step {' + '.join(f'{s:.2f}' for s in self.step_s)} s)",
            f"    launch -> runs finished {self.finished_s:6.2f} s"
            f"  (without the daemon's pickup wait {self.finished_s - self.first_run_s:6.2f} s)"
            f" | backfill marked complete +{self.complete_s:6.2f} s | {self.load}",
        ]


def _tag(run: dict[str, Any], key: str) -> str:
    return next((str(t["value"]) for t in run.get("tags", []) if t["key"] == key), "")


def run_backfill(
    api: DagsterGraphQL,
    server: DevServer,
    label: str,
    assets: list[str],
    partitions: list[str],
    timeout_s: float = 900.0,
) -> BackfillFigures:
    """Launch as the UI does; poll until the backfill is over; times from the server's clock."""
    wall0 = time.time()
    start = time.perf_counter()
    backfill_id = api.launch_backfill(assets, partitions, RUN_CONFIG)
    launch_s = time.perf_counter() - start

    def finished() -> dict[str, Any] | None:
        node = api.query(BACKFILL_RUNS, {"id": backfill_id})["partitionBackfillOrError"]
        if node["__typename"] != "PartitionBackfill":
            raise server.fail(f"backfill {backfill_id}: {node}")
        return node if node["status"] in FINISHED_BACKFILL else None

    node = poll(
        finished,
        timeout_s=timeout_s,
        what=f"backfill {label}",
        on_timeout=server.fail,
        interval_s=0.5,
    )
    complete_s = time.perf_counter() - start
    runs = node["runs"]
    if not runs:
        raise server.fail(f"backfill {label} ended {node['status']} without runs: {node}")
    created = [r["creationTime"] for r in runs]
    started = [r["startTime"] for r in runs if r["startTime"]]
    ended = [r["endTime"] for r in runs if r["endTime"]]
    figures = BackfillFigures(
        label=label,
        partitions=len(partitions),
        status=node["status"],
        runs=runs,
        launch_s=launch_s,
        first_run_s=min(created) - wall0,
        first_start_s=(min(started) - wall0) if started else float("nan"),
        finished_s=(max(ended) - wall0) if ended else float("nan"),
        complete_s=complete_s,
        run_s=[r["endTime"] - r["startTime"] for r in runs if r["startTime"] and r["endTime"]],
        step_s=[
            s["endTime"] - s["startTime"]
            for r in runs
            for s in r["stepStats"]
            if s["startTime"] and s["endTime"]
        ],
        load=load(),
    )
    for line in figures.lines():
        print(line, flush=True)
    return figures


def wait_idle(api: DagsterGraphQL, server: DevServer, quiet_s: float = 18.0) -> float:
    """Until no run is queued or running for `quiet_s` (longer than the catalog sensor's 15 s)."""
    start = time.perf_counter()
    quiet_since = time.perf_counter()
    deadline = start + 600
    while time.perf_counter() - quiet_since < quiet_s:
        active = api.query(ACTIVE_RUNS, {"statuses": ACTIVE_RUN_STATUSES})["runsOrError"]["results"]
        if active:
            quiet_since = time.perf_counter()
        if time.perf_counter() > deadline:
            raise server.fail(f"runs still active after 600 s: {active}")
        time.sleep(1)
    return time.perf_counter() - start


# --- the asset page ---------------------------------------------------------------------------

# The content a user waits for on each tab (checked in the page's own text).
OVERVIEW_READY = (
    "document.body && document.body.innerText.includes('Latest materialization')"
    " && /[0-9]{4}-[0-9]{2}-[0-9]{2}[|]/.test(document.body.innerText)"
    " && document.body.innerText.includes('Upstream assets')"
)
PARTITIONS_READY = (
    "document.body && /[0-9,]+ Partitions Selected/.test(document.body.innerText)"
    " && /Materialized [(][1-9]/.test(document.body.innerText)"
    " && document.body.innerText.includes('fixed-stop-5pct')"
)
VIEWS = {
    "overview": ("/assets/trades", OVERVIEW_READY),
    "partitions": ("/assets/trades?view=partitions", PARTITIONS_READY),
}


@dataclass
class PageLoad:
    content_s: float  # navigation -> the content condition held
    queries_done_s: float  # navigation -> the page's initial GraphQL requests all answered
    requests: list[dict[str, Any]] = field(default_factory=list)


SKIP_VISIBLE = (
    "[...document.querySelectorAll('button')]"
    ".some(e => e.innerText.trim() === 'Skip' && e.offsetParent !== null)"
)


def skip_dialog(browser: Chromium, wait_s: float) -> None:
    """Close the community dialog if it shows within `wait_s` (once per fresh instance)."""
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if browser.evaluate(SKIP_VISIBLE):
            dismiss_community_dialog(browser)
            return
        time.sleep(0.2)


def load_page(browser: Chromium, url: str, ready: str, timeout_s: float = 180.0) -> PageLoad:
    browser.goto("about:blank")
    browser.wait_for("document.readyState === 'complete'", "about:blank")
    browser.goto(url)
    deadline = time.monotonic() + timeout_s
    content_ms = None
    while content_ms is None:
        content_ms = browser.evaluate(
            f"(() => {{ try {{ return ({ready}) ? performance.now() : null; }}"
            " catch (e) { return null; } })()"
        )
        if content_ms is None:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{url}: content not shown within {timeout_s:.0f} s; "
                    f"page text: {browser.text()[:400]!r}"
                )
            time.sleep(0.05)
    # The requests sent so far (and any they trigger) all answered: the page is settled.
    while browser.evaluate("window.__inflight") not in (0, None):
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    requests_sent = browser.evaluate(
        "JSON.stringify((window.__gql || []).map(g => ({url: g.url, t0: g.t0, t1: g.t1, "
        "bytes: g.bytes, body: g.body})))"
    )
    sent = json.loads(requests_sent or "[]")
    done_ms = max([g["t1"] for g in sent if g["t1"] is not None] + [content_ms])
    return PageLoad(content_ms / 1000, done_ms / 1000, sent)


def operation(entry: dict[str, Any]) -> str:
    url = str(entry.get("url", ""))
    return url.split("op=", 1)[1] if "op=" in url else url


def time_queries(
    base_url: str, bodies: dict[str, str], repeat: int
) -> list[tuple[str, float, float, int]]:
    """Each captured GraphQL request replayed `repeat` times: (op, median s, max s, bytes)."""
    rows = []
    for op, body in bodies.items():
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            reply = requests.post(
                f"{base_url}/graphql?op={op}",
                data=body,
                headers={"Content-Type": "application/json"},
                timeout=300,
            )
            times.append(time.perf_counter() - start)
            size = len(reply.content)
            reply.raise_for_status()
            if reply.json().get("errors"):
                raise RuntimeError(f"{op}: {reply.json()['errors']}")
        rows.append((op, statistics.median(times), max(times), size))
    return sorted(rows, key=lambda row: -row[1])


@dataclass
class UiFigures:
    policies: int
    partitions: int
    pages: dict[str, list[PageLoad]]
    queries: list[tuple[str, float, float, int]]
    load: str


def measure_ui(
    server: DevServer, api: DagsterGraphQL, policies: int, out: Path, repeat: int
) -> UiFigures:
    dims = api.query(POLICY_KEYS_QUERY)["assetNodeOrError"]["partitionKeysByDimension"]
    days = len(next(d["partitionKeys"] for d in dims if d["name"] == "day"))
    partitions = days * policies
    print(
        f"\n-- asset page of `trades`: {policies} policies x {days} days = {partitions:,} partitions"
    )
    pages: dict[str, list[PageLoad]] = {}
    bodies: dict[str, str] = {}
    with Chromium(1400, 900) as browser:
        browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": FETCH_HOOK})
        # A first visit: the community dialog is skipped once, as a user would.
        browser.goto(f"{server.url}/assets/trades")
        browser.wait_for_text("Latest materialization", timeout_s=120)
        skip_dialog(browser, 15.0)
        for view, (path, ready) in VIEWS.items():
            loads = [load_page(browser, server.url + path, ready) for _ in range(repeat)]
            pages[view] = loads
            for entry in loads[0].requests:
                if entry.get("body"):
                    bodies.setdefault(operation(entry), entry["body"])
            skip_dialog(browser, 1.5)  # in case it shows again; also lets the rendering settle
            png = out / f"trades-{view}-{policies}-policies.png"
            browser.screenshot(png)
            (out / f"trades-{view}-{policies}-policies.txt").write_text(browser.text())
            contents = ", ".join(f"{p.content_s:.2f}" for p in loads)
            settled = ", ".join(f"{p.queries_done_s:.2f}" for p in loads)
            ops = sorted({operation(e) for e in loads[0].requests})
            print(
                f"  page {path}: content shown {contents} s; its GraphQL answered {settled} s "
                f"({len(loads[0].requests)} requests: {', '.join(ops)}); screenshot {png}",
                flush=True,
            )
    bodies.setdefault("PolicyKeys", json.dumps({"query": POLICY_KEYS_QUERY, "variables": {}}))
    queries = time_queries(server.url, bodies, repeat)
    print(
        "  GraphQL queries of the page, replayed directly (median / max of "
        f"{repeat}, response size):"
    )
    for op, median, worst, size in queries:
        print(f"    {op:<40} {median:7.3f} s / {worst:7.3f} s  {size / 1024:10.1f} KiB")
    return UiFigures(policies, partitions, pages, queries, load())


# What the partitions tab reads: both dimensions' keys (the brief's `partitionKeysByDimension`).
POLICY_KEYS_QUERY = """
query PolicyKeys { assetNodeOrError(assetKey: {path: ["trades"]}) {
  ... on AssetNode { partitionKeysByDimension { name partitionKeys } } } }
"""


def register_policies(project: Project, total: int) -> tuple[int, float]:
    """Grow the registry to `total` policies (fixed stops, 100 bps apart) and sync it."""
    from quantbot_assets.policy_registry import load_registry

    have = len(load_registry(project.policy_registry))
    bps = 100
    while have < total:
        if add_policy(
            project.policy_registry,
            f"fixed-stop-{bps}bps",
            {"kind": "fixed_stop", "stop_loss_bps": bps},
        ):
            have += 1
        bps += 100
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "quantbot_assets.cli", "policies", "sync"],
        cwd=project.root,
        env=project.env(),
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return have, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="7 days, 6 vs 20 policies")
    parser.add_argument(
        "--data-dir", type=Path, default=PROJECT / "data", help="sample data (generated if absent)"
    )
    parser.add_argument("--out", type=Path, help="screenshots and page texts (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=3, help="page loads and query replays each")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        print(f"needs chromium at {CHROMIUM}", file=sys.stderr)
        return 2
    days = 7 if args.quick else 31
    many = 20 if args.quick else 100
    month = day_list(date(2024, 1, 1), days)
    week = day_list(date(2024, 1, 1), 7)
    out = (args.out or Path(tempfile.mkdtemp(prefix="ui-bench-out-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    data_dir = args.data_dir.resolve()
    ensure_sample_data(data_dir)

    # SIGTERM (a CI timeout, `kill`) must still run the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="ui-bench-"))
    project = Project.create(
        work / "project", calls=data_dir / "alerts.duckdb", candles=data_dir / "candles"
    )
    print(f"machine: {uptime()}; {os.cpu_count()} CPUs")
    print(f"project {project.root}; calls {project.calls}; candles {project.candles}")
    print(f"run config of every backfill: {json.dumps(RUN_CONFIG)}")
    span = f"{month[0]}..{month[-1]}"
    server = DevServer(project)
    stopped = False
    try:
        start = time.perf_counter()
        server.wait_until_served(timeout_s=180)
        print(f"quantbot dev served in {time.perf_counter() - start:.1f} s", flush=True)
        api = DagsterGraphQL(server.url)
        poll(
            lambda: POLICY in api.policy_ids(),
            timeout_s=120,
            what="policy_registry_sensor to add the registry's policy ids",
            on_timeout=server.fail,
        )
        registered = len(api.policy_ids())

        print(f"\n== 1. backfills from the UI's mutation ({registered} policies registered)")
        fig: dict[str, BackfillFigures] = {}
        keys = [f"{day}|{POLICY}" for day in month]
        fig["fresh"] = run_backfill(
            api,
            server,
            f"a. trades,summary {span} x {POLICY}, truth computed in the run",
            POLICY_ASSETS,
            keys,
        )
        wait_idle(api, server)
        fig["week"] = run_backfill(
            api, server, f"b. alerts,paths,errors {week[0]}..{week[-1]}", TRUTH, week
        )
        wait_idle(api, server)
        fig["truth"] = run_backfill(api, server, f"c. alerts,paths,errors {span}", TRUTH, month)
        wait_idle(api, server)
        fig["reused"] = run_backfill(
            api,
            server,
            f"d. trades,summary {span} x {POLICY}, truth reused (from c)",
            POLICY_ASSETS,
            keys,
        )
        wait_idle(api, server)

        print("\n== 2. a growing partition space")
        small = measure_ui(server, api, registered, out, args.repeat)
        have, sync_s = register_policies(project, many)
        poll(
            lambda: len(api.policy_ids()) == have,
            timeout_s=120,
            what=f"{have} policy ids",
            on_timeout=server.fail,
        )
        print(f"\nregistered {have} policies; `quantbot policies sync` took {sync_s:.1f} s")
        large = measure_ui(server, api, have, out, args.repeat)
        fig["many"] = run_backfill(
            api,
            server,
            f"e. trades,summary {span} x {POLICY} with {have} policies registered (truth reused)",
            POLICY_ASSETS,
            keys,
        )
        wait_idle(api, server)

        code = server.stop()
        stopped = True
        print(f"\nquantbot dev stopped with exit code {code}; no process left")

        # ---- the figures, with their targets ----
        print(f"\n{'figure':<78} {'value':>10}  target")
        month_label = f"{days}-day" if args.quick else "month"
        for key, text in (
            ("fresh", f"UI backfill {month_label} x 1 policy, truth computed in the run"),
            ("reused", f"UI backfill {month_label} x 1 policy, truth reused"),
            ("many", f"UI backfill {month_label} x 1 policy, truth reused, {have} policies"),
            ("truth", f"UI backfill {month_label} of alerts,paths,errors"),
            ("week", "UI backfill 7 days of alerts,paths,errors"),
        ):
            f = fig[key]
            target = ""
            if key in ("fresh", "reused", "many"):
                verdict = "PASS" if f.finished_s <= TARGET_MONTH_BACKFILL_S else "FAIL"
                target = f"<= {TARGET_MONTH_BACKFILL_S:.0f} s {verdict}"
            print(f"{text + ': launch -> runs finished':<78} {f.finished_s:8.2f} s  {target}")
            print(
                f"{'  runs made':<78} {len(f.runs):>10}  1 for <= 31 days "
                f"{'PASS' if len(f.runs) == 1 else 'FAIL'}"
            )
        for ui in (small, large):
            for view, loads in ui.pages.items():
                worst = max(p.content_s for p in loads)
                verdict = "PASS" if worst <= TARGET_PAGE_CONTENT_S else "FAIL"
                print(
                    f"{f'/assets/trades {view}, {ui.partitions:,} partitions: content (worst of {len(loads)})':<78}"
                    f" {worst:8.2f} s  <= {TARGET_PAGE_CONTENT_S:.0f} s {verdict}"
                )
            op, median, _, size = ui.queries[0]
            print(
                f"{f'  slowest query of the page: {op} ({size / 1024:.0f} KiB)':<78} {median:8.2f} s"
            )
        print(f"\nmachine at the end: {uptime()}")
        print(f"screenshots and page texts: {out}")
        return 0
    finally:
        if not stopped:
            print(f"\n--- quantbot dev log (tail) ---\n{server.log_tail(30)}", file=sys.stderr)
        server.kill()  # a no-op after a clean stop; otherwise only the processes it started
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
