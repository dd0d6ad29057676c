"""Calls and candles addressed by s3:// URL read the same rows as the local files."""

from __future__ import annotations

import pandas as pd
import pytest

from quantbot_assets.definitions import build_resources
from quantbot_assets.errors import DataError
from quantbot_assets.settings import Settings
from quantbot_assets.storage import StorageError, open_location, put_file
from quantbot_assets_tests.platform.tiny_data import DAY1_MS, write_tiny_data


def test_settings_keep_urls_and_mirror_under_the_cache(tmp_path):
    settings = Settings.from_env(
        {
            "QUANTBOT_PROJECT_DIR": str(tmp_path),
            "QUANTBOT_CACHE_DIR": str(tmp_path / "cache"),
            "QUANTBOT_CALLS": "s3://calls-bucket/in/calls.parquet",
            "QUANTBOT_CANDLES": "s3://candle-bucket/candles",
        }
    )
    assert settings.calls_url == "s3://calls-bucket/in/calls.parquet"
    assert settings.calls_path == tmp_path / "cache/s3/calls-bucket/in/calls.parquet"
    assert settings.candles_url == "s3://candle-bucket/candles"
    assert settings.candles_path == tmp_path / "cache/s3/candle-bucket/candles"
    local = Settings.from_env({"QUANTBOT_PROJECT_DIR": str(tmp_path)})
    assert local.calls_url is None and local.candles_path == tmp_path / "data/candles"


def test_settings_name_a_malformed_url(tmp_path):
    with pytest.raises(StorageError, match=r"^s3://Not_A_Bucket/x: 'Not_A_Bucket' is not"):
        Settings.from_env(
            {"QUANTBOT_PROJECT_DIR": str(tmp_path), "QUANTBOT_CANDLES": "s3://Not_A_Bucket/x"}
        )
    assert issubclass(StorageError, DataError)  # one line, exit code 2 from the CLI


def test_resources_read_the_bucket_like_the_disk(bucket, tmp_path, s3_env):
    tiny = write_tiny_data(tmp_path / "tiny")
    put_file(tiny.calls, open_location(f"{bucket}/in/calls.parquet"))
    put_file(tiny.candles, open_location(f"{bucket}/candles/date=2024-01-01/part-0.parquet"))

    def resources(env: dict[str, str]) -> dict[str, object]:
        base = {"QUANTBOT_PROJECT_DIR": str(tmp_path), **env}
        return build_resources(Settings.from_env({**s3_env, **base}))

    local = resources({"QUANTBOT_CALLS": str(tiny.calls), "QUANTBOT_CANDLES": str(tiny.candles)})
    remote = resources(
        {
            "QUANTBOT_CALLS": f"{bucket}/in/calls.parquet",
            "QUANTBOT_CANDLES": f"{bucket}/candles",
            "QUANTBOT_CACHE_DIR": str(tmp_path / "worker-cache"),
        }
    )
    day = (DAY1_MS, DAY1_MS + 86_400_000)
    local_calls = local["calls_source"].load(*day)  # type: ignore[attr-defined]
    remote_calls = remote["calls_source"].load(*day)  # type: ignore[attr-defined]
    pd.testing.assert_frame_equal(local_calls.calls, remote_calls.calls)
    assert len(remote_calls.calls) > 0

    keys = local_calls.calls[["chain", "mint"]].drop_duplicates()
    window = (DAY1_MS, DAY1_MS + 2 * 86_400_000)
    local_bars = local["candle_source"].load(keys, *window)  # type: ignore[attr-defined]
    remote_bars = remote["candle_source"].load(keys, *window)  # type: ignore[attr-defined]
    assert len(remote_bars) == len(local_bars) > 0
    pd.testing.assert_frame_equal(
        local_bars.reset_index(drop=True).astype({"mint": str, "chain": str}),
        remote_bars.reset_index(drop=True).astype({"mint": str, "chain": str}),
        check_categorical=False,
    )
    # The identity (part of every truth key) is the URL: the same on every worker.
    assert remote["candle_source"].identity() == f"{bucket}/candles"  # type: ignore[attr-defined]
    assert (tmp_path / "worker-cache/s3" / bucket[5:] / "candles/date=2024-01-01").is_dir()
