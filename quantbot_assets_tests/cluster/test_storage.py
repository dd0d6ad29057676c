"""quantbot_assets.storage against moto's S3 server: URLs, mirrors, publication order, errors."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from quantbot_assets import storage
from quantbot_assets.storage import StorageError


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/x", "unsupported URL scheme 'ftp'"),
        ("s3:///no-bucket", "is not a bucket name"),
        ("s3://Bad_Bucket!/x", "'Bad_Bucket!' is not a bucket name"),
    ],
)
def test_malformed_urls_are_named(url, message):
    with pytest.raises(StorageError, match="^" + url.split("?")[0].replace("/", "/")) as info:
        storage.open_location(url)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_local_paths_and_file_urls_are_local(tmp_path):
    loc = storage.open_location(tmp_path / "a")
    assert not loc.is_remote and loc.path == str(tmp_path / "a")
    assert storage.open_location(f"file://{tmp_path}/b").path == f"{tmp_path}/b"
    assert not storage.is_url(str(tmp_path)) and storage.is_url("s3://b/k")


def test_missing_bucket_is_one_line(s3_env, tmp_path):
    with pytest.raises(StorageError, match=r"^s3://qb-missing-bucket/x: no such bucket"):
        storage.sync_mirror("s3://qb-missing-bucket/x", tmp_path / "m")


def test_unreachable_endpoint_is_one_line(s3_env, monkeypatch, tmp_path):
    monkeypatch.setenv("QUANTBOT_S3_ENDPOINT", "http://127.0.0.1:9")
    with pytest.raises(StorageError, match=r"^s3://bkt/x: cannot reach http://127.0.0.1:9"):
        storage.sync_mirror("s3://bkt/x", tmp_path / "m")


def test_nothing_at_a_prefix_is_named(bucket, tmp_path):
    with pytest.raises(StorageError, match=rf"^{bucket}/nothing: nothing there"):
        storage.sync_mirror(f"{bucket}/nothing", tmp_path / "m")


def test_publication_order_puts_manifest_then_marker_last():
    names = ["_SUCCESS", "run.json", "truth/paths.parquet", "checks/x.json", "inputs/a.parquet"]
    ordered = storage.publication_order(names)
    assert ordered[-2:] == ["run.json", "_SUCCESS"]
    assert set(ordered[:-2]) == {"truth/paths.parquet", "checks/x.json", "inputs/a.parquet"}
    # A file named like a marker inside a sub-folder is an ordinary file.
    assert storage.publication_order(["_FAILED", "logs/_SUCCESS"]) == ["logs/_SUCCESS", "_FAILED"]


def test_publish_tree_uploads_every_file_marker_last(bucket, tmp_path):
    local = _tree(
        tmp_path / "run",
        {
            "run.json": "{}",
            "_SUCCESS": "",
            "truth/paths.parquet": "p",
            "inputs/alerts.parquet": "a",
            ".run.json.tmp": "half",
        },
    )
    dest = storage.open_location(f"{bucket}/runs/2024-01/run_id=r1")
    written = storage.publish_tree(local, dest)
    assert written[-2:] == ["run.json", "_SUCCESS"]
    assert sorted(storage.list_files(dest)) == sorted(
        ["run.json", "_SUCCESS", "truth/paths.parquet", "inputs/alerts.parquet"]
    )


def test_sync_mirror_fetches_changes_and_drops_deleted_objects(bucket, tmp_path):
    src = _tree(tmp_path / "src", {"date=2024-01-01/a.parquet": "one", "b.parquet": "two"})
    dest = storage.open_location(f"{bucket}/candles")
    storage.publish_tree(src, dest)
    mirror = storage.sync_mirror(f"{bucket}/candles", tmp_path / "mirror")
    assert (mirror / "date=2024-01-01/a.parquet").read_text() == "one"
    assert (mirror / "b.parquet").read_text() == "two"

    time.sleep(0.01)
    (src / "date=2024-01-01/a.parquet").write_text("one, longer")
    storage.put_file(src / "date=2024-01-01/a.parquet", dest.child("date=2024-01-01/a.parquet"))
    dest.fs.delete_file(dest.child("b.parquet").path)
    storage.sync_mirror(f"{bucket}/candles", mirror)
    assert (mirror / "date=2024-01-01/a.parquet").read_text() == "one, longer"
    assert not (mirror / "b.parquet").exists()
    # Unchanged objects are not downloaded again (the file is not replaced).
    before = (mirror / "date=2024-01-01/a.parquet").stat().st_ino
    storage.sync_mirror(f"{bucket}/candles", mirror)
    assert (mirror / "date=2024-01-01/a.parquet").stat().st_ino == before


def test_sync_mirror_of_one_object_is_a_file(bucket, tmp_path):
    (tmp_path / "calls.parquet").write_bytes(b"PAR1")
    storage.put_file(
        tmp_path / "calls.parquet", storage.open_location(f"{bucket}/in/calls.parquet")
    )
    target = storage.mirror_dir(f"{bucket}/in/calls.parquet", tmp_path / "cache")
    assert target == tmp_path / "cache" / "s3" / bucket[5:] / "in" / "calls.parquet"
    assert storage.sync_mirror(f"{bucket}/in/calls.parquet", target).read_bytes() == b"PAR1"


def test_put_file_locally_is_atomic_rename(tmp_path):
    (tmp_path / "x").write_text("new")
    storage.put_file(tmp_path / "x", storage.open_location(tmp_path / "out" / "y"))
    assert (tmp_path / "out" / "y").read_text() == "new"
    assert os.listdir(tmp_path / "out") == ["y"]
