"""The policy registry file and its sync into the `policy` partition dimension."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from quantbot_assets.policy_registry import RegistryError, add_policy, get_policy, load_registry
from quantbot_assets.sensors import build_policy_registry_sensor
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
