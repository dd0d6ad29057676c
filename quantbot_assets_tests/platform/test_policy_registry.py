"""The policy registry file and its sync into the `policy` partition dimension."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from quantbot_assets.defs.policies.sensors import build_policy_registry_sensor
from quantbot_assets.policy_registry import RegistryError, add_policy, get_policy, load_registry
from quantbot_assets.settings import PACKAGE_DIR


def test_the_shipped_registry_has_the_seed_policy_and_every_kind() -> None:
    registry = load_registry(PACKAGE_DIR.parent / "policies.yaml")
    seed = registry["fixed-stop-5pct"].model_dump(mode="json", exclude_none=True)
    assert seed == {"kind": "fixed_stop", "stop_loss_bps": 500}
    kinds = {p.model_dump(mode="json")["kind"] for p in registry.values()}
    assert kinds == {"fixed_stop", "time_stop", "trailing_stop", "ladder", "combo"}


def test_add_policy_is_idempotent_and_refuses_a_new_definition_under_an_old_id(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policies.yaml"
    assert add_policy(path, "sl-10", '{"kind":"fixed_stop","stop_loss_bps":1000}') is True
    assert add_policy(path, "sl-10", {"kind": "fixed_stop", "stop_loss_bps": 1000}) is False
    with pytest.raises(RegistryError, match="already names a different policy"):
        add_policy(path, "sl-10", {"kind": "fixed_stop", "stop_loss_bps": 900})
    assert get_policy(path, "sl-10").model_dump(mode="json")["stop_loss_bps"] == 1000


@pytest.mark.parametrize("bad_id", ["Has Space", "a|b", "a/b", "", "-lead"])
def test_policy_ids_must_be_safe_partition_keys(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(RegistryError, match="policy id"):
        add_policy(tmp_path / "p.yaml", bad_id, {"kind": "fixed_stop", "stop_loss_bps": 100})


def test_invalid_policy_names_the_field(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="stop_loss_bps"):
        add_policy(tmp_path / "p.yaml", "bad", {"kind": "fixed_stop", "stop_loss_bps": 10_000})
    path = tmp_path / "broken.yaml"
    path.write_text("policies:\n  oops:\n    kind: fixed_stop\n    stop_loss_bps: -5\n")
    with pytest.raises(RegistryError, match="oops"):
        load_registry(path)


def test_unknown_policy_id_lists_the_known_ones(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    add_policy(path, "sl-10", {"kind": "fixed_stop", "stop_loss_bps": 1000})
    with pytest.raises(RegistryError, match="known: sl-10"):
        get_policy(path, "nope")


def test_sensor_adds_new_policy_ids_then_skips(
    tmp_path: Path, instance: dg.DagsterInstance
) -> None:
    path = tmp_path / "p.yaml"
    add_policy(path, "sl-10", {"kind": "fixed_stop", "stop_loss_bps": 1000})
    sensor = build_policy_registry_sensor(path)
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    [request] = result.dynamic_partitions_requests or []
    assert list(request.partition_keys) == ["sl-10"]
    instance.add_dynamic_partitions("policy_id", ["sl-10"])
    assert isinstance(sensor(dg.build_sensor_context(instance=instance)), dg.SkipReason)
    add_policy(path, "sl-20", {"kind": "fixed_stop", "stop_loss_bps": 2000})
    result = sensor(dg.build_sensor_context(instance=instance))
    assert isinstance(result, dg.SensorResult)
    assert list(result.dynamic_partitions_requests[0].partition_keys) == ["sl-20"]


def test_register_policy_job_adds_to_the_registry_and_the_partitions(
    defs: dg.Definitions, instance: dg.DagsterInstance, settings
) -> None:
    job = defs.resolve_job_def("register_policy")
    config = {
        "ops": {
            "add_policy_to_registry": {
                "config": {
                    "policy_id": "sl-7",
                    "policy_json": '{"kind":"fixed_stop","stop_loss_bps":700}',
                }
            }
        }
    }
    assert job.execute_in_process(instance=instance, run_config=config).success
    assert "sl-7" in load_registry(settings.policy_registry)
    assert instance.has_dynamic_partition("policy_id", "sl-7")
    bad = {
        "ops": {
            "add_policy_to_registry": {
                "config": {
                    "policy_id": "sl-7",
                    "policy_json": '{"kind":"fixed_stop","stop_loss_bps":800}',
                }
            }
        }
    }
    result = job.execute_in_process(instance=instance, run_config=bad, raise_on_error=False)
    assert not result.success


# ---- integrity (issue 10 item 5) ---------------------------------------------------------

SL = {"kind": "fixed_stop", "stop_loss_bps": 700}


@pytest.mark.parametrize("bad_id", ["fixed-stop-5pct\n", "sl-7\n", "a\nb", "ok\r"])
def test_policy_ids_are_matched_whole(tmp_path: Path, bad_id: str) -> None:
    with pytest.raises(RegistryError, match="policy id"):
        add_policy(tmp_path / "p.yaml", bad_id, SL)


def test_run_ids_are_matched_whole() -> None:
    from quantbot_assets.rundir import check_run_id

    assert check_run_id("run-1") == "run-1"
    with pytest.raises(ValueError, match="run id"):
        check_run_id("run-1\n")


def test_adding_appends_and_keeps_comments_and_formatting(tmp_path: Path) -> None:
    path = tmp_path / "policies.yaml"
    shipped = (PACKAGE_DIR.parent / "policies.yaml").read_text()
    original = shipped + "  # a trailing hand-written comment\n"
    path.write_text(original)
    assert add_policy(path, "sl-7", '{"kind":"fixed_stop","stop_loss_bps":700}')
    ladder = {
        "kind": "ladder",
        "levels": [{"multiple": 2.0, "fraction": 0.5}, {"multiple": 3.0, "fraction": 0.5}],
        "stop_loss_bps": 100,
    }
    assert add_policy(path, "ladder-new", ladder)
    text = path.read_text()
    assert text.startswith(original)  # nothing above the new entries changed
    assert text[len(original) :] == (
        "  sl-7:\n"
        "    kind: fixed_stop\n"
        "    stop_loss_bps: 700\n"
        "  ladder-new:\n"
        "    kind: ladder\n"
        "    levels:\n"
        "      - {multiple: 2, fraction: 0.5}\n"
        "      - {multiple: 3, fraction: 0.5}\n"
        "    stop_loss_bps: 100\n"
    )
    registry = load_registry(path)
    assert "sl-7" in registry and "ladder-new" in registry and "fixed-stop-5pct" in registry


def test_the_header_and_the_shipped_file_do_not_point_outside_the_repository(
    tmp_path: Path,
) -> None:
    path = tmp_path / "new.yaml"
    add_policy(path, "sl-7", SL)
    for text in (path.read_text(), (PACKAGE_DIR.parent / "policies.yaml").read_text()):
        assert "../" + "shared" not in text and "docs/semantics.md" in text


def test_a_flow_style_registry_is_rewritten_with_its_comments(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("# mine\npolicies: {a: {kind: fixed_stop, stop_loss_bps: 100}}\n")
    assert add_policy(path, "b", SL)
    assert path.read_text().startswith("# mine\n")
    assert set(load_registry(path)) == {"a", "b"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("base: &b {kind: fixed_stop, stop_loss_bps: 5}\npolicies:\n  p: *b\n", "anchors"),
        ("policies:\n  p: *b\n", "alias"),
        (
            "policies:\n  p: {kind: fixed_stop, stop_loss_bps: 5}\n"
            "  p: {kind: fixed_stop, stop_loss_bps: 6}\n",
            "duplicate key 'p'",
        ),
        ("policies:\n  p:\n    kind: fixed_stop\n    kind: time_stop\n", "duplicate key 'kind'"),
    ],
)
def test_aliases_anchors_and_duplicate_keys_are_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "p.yaml"
    path.write_text(text)
    with pytest.raises(RegistryError, match=message):
        load_registry(path)
    with pytest.raises(RegistryError, match=message):
        add_policy(path, "q", SL)
    assert path.read_text() == text  # untouched


def test_an_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    path = tmp_path / "p.yaml"
    path.write_text("\n".join(lines) + "\npolicies:\n  p: *a8\n")
    with pytest.raises(RegistryError, match="not allowed"):
        load_registry(path)


@pytest.mark.parametrize(
    ("policy", "message"),
    [
        ('{"kind":"fixed_stop","stop_loss_bps":700,"stop_loss_bps":800}', "duplicate key"),
        ('{"kind":"fixed_stop","stop_loss_bps":NaN}', "NaN"),
        ('{"kind":"fixed_stop","stop_loss_bps":Infinity}', "Infinity"),
    ],
)
def test_json_policies_with_duplicate_keys_or_non_finite_numbers_are_refused(
    tmp_path: Path, policy: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        add_policy(tmp_path / "p.yaml", "dup", policy)
    assert not (tmp_path / "p.yaml").exists()


def _add_many(path: str, worker: int, count: int) -> None:
    for i in range(count):
        add_policy(Path(path), f"w{worker}-p{i}", {"kind": "fixed_stop", "stop_loss_bps": 100 + i})


def test_concurrent_writers_lose_no_policy(tmp_path: Path) -> None:
    import multiprocessing

    path = tmp_path / "policies.yaml"
    path.write_text((PACKAGE_DIR.parent / "policies.yaml").read_text())
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_add_many, args=(str(path), w, 10)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    registry = load_registry(path)
    assert {f"w{w}-p{i}" for w in range(3) for i in range(10)} <= set(registry)
    assert len(registry) == 6 + 30
