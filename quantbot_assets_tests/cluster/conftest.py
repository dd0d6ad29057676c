from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator

import pytest

moto_server = pytest.importorskip(
    "moto.server", reason="moto[server] is not installed (pip install -e '.[cluster]')"
)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3 server on 127.0.0.1 (a free port), for the whole session."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_env(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Environment pointing pyarrow's S3 client at the moto server."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "QUANTBOT_S3_ENDPOINT": s3_endpoint,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("QUANTBOT_CATALOG_URL", raising=False)
    return {**os.environ, **env}


@pytest.fixture
def bucket(s3_env: dict[str, str]) -> str:
    """A new, empty bucket: its s3:// URL."""
    from quantbot_assets.storage import create_bucket

    name = f"qb-{uuid.uuid4().hex[:12]}"
    create_bucket(f"s3://{name}")
    return f"s3://{name}"
