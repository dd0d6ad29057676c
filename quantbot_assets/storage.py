"""Files addressed by URL: a local path, `s3://bucket/prefix` (AWS S3, MinIO, moto), `gs://`.

One small layer over `pyarrow.fs`, so the same code reads and writes a local
disk or a bucket:

- `open_location(url)` parses a URL into a pyarrow filesystem and a path on
  it. S3 takes its endpoint from `QUANTBOT_S3_ENDPOINT` or `AWS_ENDPOINT_URL`
  (MinIO, moto; `http://` means no TLS), its region from `AWS_REGION` /
  `AWS_DEFAULT_REGION`, its credentials from the usual AWS variables.
- `sync_mirror(url, local)` keeps a local read-only copy of a prefix (the
  candle store, the calls): only objects whose size or time changed are
  downloaded again, objects gone from the bucket are removed from the copy.
  The engine then reads local files, with the same pruning as ever.
- `publish_tree(local, url)` uploads a directory in the order readers rely on
  where there is no rename: every other file first, then `run.json`, then
  the marker (`_SUCCESS`, `_FAILED`) last. A reader trusts a prefix only once
  its marker exists.
- `put_file` / `get_file`: one object written whole (an object store never
  shows half an object) or read whole (the catalog snapshot).

Every problem a user can fix (a malformed URL, a missing bucket, refused
credentials, an unreachable endpoint) is a `StorageError`: one line naming
the URL.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.fs as pafs

from quantbot_assets.errors import DataError

# Schemes handled here; anything else with "://" is refused by name.
REMOTE_SCHEMES = ("s3", "gs", "gcs")
_URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")
# Files a reader trusts only after everything else: the manifest, then a marker.
MANIFEST = "run.json"
MARKERS = ("_SUCCESS", "_FAILED")
_CHUNK = 8 << 20


class StorageError(DataError, OSError):
    """A URL that cannot be used as given (one line naming it)."""


def is_url(value: str | os.PathLike[str] | None) -> bool:
    """Whether `value` is a URL (`scheme://...`) rather than a local path."""
    return value is not None and bool(_URL.match(str(value)))


@dataclass(frozen=True)
class Location:
    """A place on a filesystem: `fs` and `path` as pyarrow.fs takes them, and the URL given."""

    fs: pafs.FileSystem
    path: str
    url: str

    def child(self, relative: str) -> Location:
        rel = relative.strip("/")
        sep = "" if self.path.endswith("/") or not self.path else "/"
        url_sep = "" if self.url.endswith("/") else "/"
        return Location(self.fs, f"{self.path}{sep}{rel}", f"{self.url}{url_sep}{rel}")

    @property
    def is_remote(self) -> bool:
        return urlsplit(self.url).scheme in REMOTE_SCHEMES


def s3_endpoint(env: Mapping[str, str] | None = None) -> str | None:
    env = os.environ if env is None else env
    return env.get("QUANTBOT_S3_ENDPOINT") or env.get("AWS_ENDPOINT_URL") or None


def _s3_filesystem(env: Mapping[str, str], *, create_buckets: bool = False) -> pafs.S3FileSystem:
    kwargs: dict[str, object] = {
        "allow_bucket_creation": create_buckets,
        "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
        "connect_timeout": 5.0,
        "request_timeout": 60.0,
    }
    endpoint = s3_endpoint(env)
    if endpoint:
        parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
        if not parts.netloc:
            raise StorageError(f"S3 endpoint {endpoint!r} has no host (e.g. http://127.0.0.1:9000)")
        kwargs["endpoint_override"] = parts.netloc
        kwargs["scheme"] = parts.scheme or "https"
        # MinIO and moto address buckets by path, not by virtual host names.
        kwargs["force_virtual_addressing"] = False
    return pafs.S3FileSystem(**kwargs)  # type: ignore[arg-type]


def open_location(url: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Location:
    """The filesystem and path of `url` (a local path, `file://`, `s3://bucket/key`, `gs://`)."""
    env = os.environ if env is None else env
    text = str(url)
    match = _URL.match(text)
    if match is None:
        local = str(Path(text).expanduser().resolve())
        return Location(pafs.LocalFileSystem(), local, local)
    scheme = match.group(1).lower()
    parts = urlsplit(text)
    if scheme == "file":
        return Location(pafs.LocalFileSystem(), parts.path, text)
    if scheme not in REMOTE_SCHEMES:
        raise StorageError(
            f"{text}: unsupported URL scheme {scheme!r} (use s3://, gs:// or a path)"
        )
    if not parts.netloc or not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,62}", parts.netloc):
        raise StorageError(f"{text}: {parts.netloc!r} is not a bucket name")
    key = parts.path.strip("/")
    where = f"{parts.netloc}/{key}" if key else parts.netloc
    if scheme == "s3":
        fs: pafs.FileSystem = _s3_filesystem(env)
    else:
        try:
            fs = pafs.GcsFileSystem()
        except Exception as exc:  # pyarrow built without GCS
            raise StorageError(f"{text}: GCS is not available here: {exc}") from None
    return Location(fs, where, text.rstrip("/") if key else text)


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    low = text.lower()
    if "nosuchbucket" in low or "bucket does not exist" in low or "bucket not found" in low:
        return "no such bucket"
    if "access denied" in low or "accessdenied" in low or "invalidaccesskeyid" in low:
        return "access denied (check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
    if "signaturedoesnotmatch" in low:
        return "credentials refused (check AWS_SECRET_ACCESS_KEY)"
    if "curl" in low or "connect" in low or "resolve" in low:
        endpoint = s3_endpoint() or "the default endpoint"
        return f"cannot reach {endpoint} ({text[:160]})"
    return text[:200]


def _wrap(loc: Location, exc: BaseException) -> StorageError:
    return StorageError(f"{loc.url}: {_describe(exc)}")


def check_bucket(loc: Location) -> None:
    """Raise a one-line StorageError when the bucket of a remote location is unusable."""
    if not loc.is_remote:
        return
    bucket = loc.path.split("/", 1)[0]
    try:
        info = loc.fs.get_file_info(bucket)
    except OSError as exc:
        raise _wrap(loc, exc) from None
    if info.type == pafs.FileType.NotFound:
        raise StorageError(f"{loc.url}: no such bucket {bucket!r}")


def create_bucket(url: str, env: Mapping[str, str] | None = None) -> None:
    """Create the bucket of an `s3://` URL unless it exists (local clusters, tests)."""
    env = os.environ if env is None else env
    loc = open_location(url, env)
    if not url.startswith("s3://"):
        raise StorageError(f"{url}: only s3:// buckets are created here")
    bucket = loc.path.split("/", 1)[0]
    fs = _s3_filesystem(env, create_buckets=True)
    try:
        if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
            fs.create_dir(bucket)
    except OSError as exc:
        raise _wrap(loc, exc) from None


def exists(loc: Location) -> bool:
    try:
        return loc.fs.get_file_info(loc.path).type != pafs.FileType.NotFound
    except OSError as exc:
        raise _wrap(loc, exc) from None


def list_files(loc: Location) -> dict[str, pafs.FileInfo]:
    """Files under `loc` (or `loc` itself if it is a file), by path relative to `loc`.

    Names starting with '.' at any depth are temporary files and left out.
    """
    try:
        info = loc.fs.get_file_info(loc.path)
        if info.type == pafs.FileType.File:
            return {"": info}
        if info.type == pafs.FileType.NotFound:
            check_bucket(loc)
            return {}
        found = loc.fs.get_file_info(pafs.FileSelector(loc.path, recursive=True))
    except StorageError:
        raise
    except OSError as exc:
        raise _wrap(loc, exc) from None
    prefix = loc.path.rstrip("/") + "/"
    files = {}
    for entry in found:
        if entry.type != pafs.FileType.File:
            continue
        rel = entry.path[len(prefix) :] if entry.path.startswith(prefix) else entry.base_name
        if any(part.startswith(".") for part in rel.split("/")):
            continue
        files[rel] = entry
    return files


def get_file(loc: Location, local: Path) -> Path:
    """Download one object to `local` (written under a temporary name, then renamed)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{local.name}.", dir=local.parent)
    try:
        with os.fdopen(fd, "wb") as out, loc.fs.open_input_stream(loc.path) as src:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
        os.replace(tmp, local)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, StorageError):
            raise
        if isinstance(exc, FileNotFoundError) or "not found" in str(exc).lower():
            check_bucket(loc)
            raise StorageError(f"{loc.url}: no such object") from None
        raise _wrap(loc, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return local


def put_file(local: Path, loc: Location) -> None:
    """Upload `local` as one object (a local target is written aside and renamed into place)."""
    try:
        if not loc.is_remote:
            target = Path(loc.path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
            with open(local, "rb") as src, open(tmp, "wb") as out:
                while chunk := src.read(_CHUNK):
                    out.write(chunk)
            os.replace(tmp, target)
            return
        with open(local, "rb") as src, loc.fs.open_output_stream(loc.path) as out:
            while chunk := src.read(_CHUNK):
                out.write(chunk)
    except StorageError:
        raise
    except OSError as exc:
        check_bucket(loc)
        raise _wrap(loc, exc) from None


def publication_order(names: Iterable[str]) -> list[str]:
    """Relative paths in the order they are published: files, then run.json, then markers."""

    def rank(name: str) -> tuple[int, str]:
        base = name.rsplit("/", 1)[-1]
        if base in MARKERS and "/" not in name:
            return (2, name)
        if name == MANIFEST:
            return (1, name)
        return (0, name)

    return sorted(names, key=rank)


def publish_tree(local: Path, loc: Location) -> list[str]:
    """Upload every file under `local` to `loc`: artifacts, then `run.json`, then the marker.

    Returns the relative paths in the order they were written. Files whose
    name starts with '.' (temporaries) are left out.
    """
    check_bucket(loc)
    names = [
        p.relative_to(local).as_posix()
        for p in local.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(local).parts)
    ]
    ordered = publication_order(names)
    for name in ordered:
        put_file(local / name, loc.child(name))
    return ordered


def sync_mirror(url: str, local: Path) -> Path:
    """Make `local` a copy of the file or prefix at `url`; returns the path to read.

    Objects are downloaded again only when their size or modification time
    changed; local files whose object is gone are removed. A prefix becomes
    a directory (its layout kept, so `date=YYYY-MM-DD` pruning still works),
    a single object the file `local` (name `local` like the object: the
    suffix says the file kind).
    """
    loc = open_location(url)
    files = list_files(loc)
    if not files:
        raise StorageError(f"{url}: nothing there (no such object or prefix)")
    if "" in files:  # a single object: `local` is the file
        fetch_if_changed(loc, files[""], local)
        return local
    for rel, info in files.items():
        fetch_if_changed(loc.child(rel), info, local / rel)
    wanted = {local / rel for rel in files}
    for path in sorted(local.rglob("*"), reverse=True):
        if path.is_file() and path not in wanted and not path.name.startswith("."):
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return local


def fetch_if_changed(loc: Location, info: pafs.FileInfo, target: Path) -> None:
    """Download `loc` to `target` unless `target` has its size and modification time."""
    mtime_ns = info.mtime_ns
    if target.exists():
        st = target.stat()
        if st.st_size == info.size and (mtime_ns is None or st.st_mtime_ns == mtime_ns):
            return
    get_file(loc, target)
    if mtime_ns is not None:
        os.utime(target, ns=(mtime_ns, mtime_ns))


def mirror_dir(url: str, cache_root: Path) -> Path:
    """Where `url` is mirrored under `cache_root`: `<root>/<scheme>/<bucket>/<key>`."""
    parts = urlsplit(url)
    key = [p for p in parts.path.split("/") if p and p not in (".", "..")]
    return cache_root.joinpath(parts.scheme, parts.netloc, *key)
