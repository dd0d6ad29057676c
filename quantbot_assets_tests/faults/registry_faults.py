"""Policy registry faults: concurrent writers, hostile ids, policies and registry files."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

from quantbot_assets.policy_registry import RegistryError, load_registry
from quantbot_assets.settings import PACKAGE_DIR
from quantbot_assets_tests.faults.harness import Context, Trial, fault_group, run_cli

SHIPPED = PACKAGE_DIR.parent / "policies.yaml"
WRITERS_ROW = "policy registry: concurrent writers (3 x 10 adds)"


def _writer(path: str, worker: int, stops: list[int]) -> None:
    from quantbot_assets.policy_registry import add_policy

    for i, stop in enumerate(stops):
        add_policy(Path(path), f"w{worker}-p{i}", {"kind": "fixed_stop", "stop_loss_bps": stop})
        if i % 4 == 0:  # an idempotent re-add of the seed policy now and then
            add_policy(Path(path), "fixed-stop-5pct", '{"kind":"fixed_stop","stop_loss_bps":500}')


@fault_group("policy registry: concurrent writers", smoke=1, default=2, full=6)
def concurrent_writers(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    context = multiprocessing.get_context("spawn")
    for number in range(trials):
        folder = ctx.scratch(f"writers{number}")
        path = folder / "policies.yaml"
        original = SHIPPED.read_text() + "# a hand-written comment that must stay\n"
        path.write_text(original)
        plan = {w: [ctx.rng.randint(1, 9999) for _ in range(10)] for w in range(3)}
        workers = [context.Process(target=_writer, args=(str(path), w, plan[w])) for w in plan]
        for worker in workers:
            worker.start()
        trial = Trial()
        for worker in workers:
            worker.join(120)
            if worker.is_alive():
                worker.kill()
                trial.stuck = True
                trial.notes.append("a registry writer did not finish in 120 s")
            elif worker.exitcode != 0:
                trial.traceback = True
                trial.notes.append(f"a registry writer exited with {worker.exitcode}")
        text = path.read_text()
        try:
            registry = load_registry(path)
        except RegistryError as exc:
            trial.data_lost = True
            trial.notes.append(f"registry unreadable afterwards: {exc}")
            registry = {}
        wanted = {f"w{w}-p{i}" for w in plan for i in range(10)}
        if registry and not wanted <= set(registry):
            trial.data_lost = True
            trial.notes.append(f"lost {len(wanted - set(registry))} of {len(wanted)} policy ids")
        if not text.startswith(original):
            trial.data_lost = True
            trial.notes.append("the file's existing text (comments, formatting) was rewritten")
        for worker, stops in plan.items():
            for i, stop in enumerate(stops):
                got = registry.get(f"w{worker}-p{i}")
                if got is not None and got.model_dump(mode="json").get("stop_loss_bps") != stop:
                    trial.wrongly_complete = True
                    trial.notes.append(f"w{worker}-p{i} holds another definition")
        yield WRITERS_ROW, trial


ALIAS_BOMB = (
    "\n".join(
        ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
        + [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    )
    + "\npolicies:\n  bomb: *a8\n"
)

# name -> (registry text or None for the shipped one, command arguments)
HOSTILE: dict[str, tuple[str | None, list[str]]] = {
    "policy id with a trailing newline": (
        None,
        [
            "add",
            "--policy-id",
            "fixed-stop-5pct\n",
            "--policy",
            '{"kind":"fixed_stop","stop_loss_bps":900}',
        ],
    ),
    "policy id with a carriage return / capitals": (
        None,
        ["add", "--policy-id", "New-Id\r", "--policy", '{"kind":"fixed_stop","stop_loss_bps":900}'],
    ),
    "policy JSON with a duplicate key": (
        None,
        [
            "add",
            "--policy-id",
            "dup-key",
            "--policy",
            '{"kind":"fixed_stop","stop_loss_bps":100,"stop_loss_bps":900}',
        ],
    ),
    "policy JSON with NaN": (
        None,
        ["add", "--policy-id", "nan-stop", "--policy", '{"kind":"fixed_stop","stop_loss_bps":NaN}'],
    ),
    "another definition under an existing id": (
        None,
        [
            "add",
            "--policy-id",
            "fixed-stop-5pct",
            "--policy",
            '{"kind":"fixed_stop","stop_loss_bps":900}',
        ],
    ),
    "registry with a YAML alias bomb": (ALIAS_BOMB, ["list"]),
    "registry with a duplicate policy id": (
        "policies:\n  p: {kind: fixed_stop, stop_loss_bps: 5}\n  p: {kind: fixed_stop, stop_loss_bps: 6}\n",
        ["list"],
    ),
    "registry with a duplicate field": (
        "policies:\n  p:\n    kind: fixed_stop\n    stop_loss_bps: 5\n    stop_loss_bps: 6\n",
        ["add", "--policy-id", "q", "--policy", '{"kind":"fixed_stop","stop_loss_bps":900}'],
    ),
}


@fault_group("policy registry: hostile inputs via `quantbot policies`", smoke=1, default=1, full=2)
def hostile_inputs(ctx: Context, trials: int) -> Iterator[tuple[str, Trial]]:
    kinds = list(HOSTILE)
    if ctx.mode == "smoke":
        kinds = ctx.rng.sample(kinds, 4)
    for number in range(trials):
        for kind in kinds:
            text, args = HOSTILE[kind]
            project = ctx.scratch(f"hostile{number}")
            path = project / "policies.yaml"
            path.write_text(text if text is not None else SHIPPED.read_text())
            before = path.read_bytes()
            result = run_cli(["policies", *args], project, timeout=30)
            trial = Trial()
            if result.timed_out:
                trial.stuck = True
                trial.notes.append("did not finish in 30 s")
            elif result.traceback:
                trial.traceback = True
                trial.notes.append(result.describe())
            elif result.one_line_error():
                trial.clear_error = True
            elif result.code == 0:
                trial.escape = True
                trial.notes.append(f"accepted: {result.stdout.strip()[:200]}")
            else:
                trial.traceback = True
                trial.notes.append(f"not a one-line error: {result.describe()}")
            if path.read_bytes() != before:
                trial.escape = True
                trial.notes.append("the registry file changed")
            yield kind, trial
