"""Object storage for the tests: moto's S3 server mode on loopback, a real HTTP server.

``s3_server`` (session) starts ``python -m moto.server`` on a free 127.0.0.1 port as a subprocess,
waits until it answers and stops it at the end; ``s3_bucket`` creates a fresh bucket per test;
``s3_settings`` points a lake's data path at that bucket with the credentials in the
environment (CITYPIPE_S3_*), so subprocesses a test starts use it too. Without moto (a dev
dependency) the tests skip with the reason.
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from common.settings import Settings, get_settings
from simulator.broker import free_port

START_TIMEOUT_S = 30.0
REGION = "us-east-1"


@dataclass(frozen=True)
class S3Server:
    """A running S3-compatible server: ``endpoint`` is host:port as DuckDB's secret wants it."""

    endpoint: str
    access_key_id: str
    secret_access_key: str
    region: str = REGION

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self) -> Any:  # a boto3 S3 client (boto3 ships no type stubs)
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
        )


@dataclass(frozen=True)
class S3Bucket:
    server: S3Server
    name: str

    def keys(self, prefix: str = "") -> list[str]:
        """Every object key under ``prefix`` (paginated: a lake can hold many files)."""
        pages = self.server.client().get_paginator("list_objects_v2")
        return [
            obj["Key"]
            for page in pages.paginate(Bucket=self.name, Prefix=prefix)
            for obj in page.get("Contents", [])
        ]


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status)
    except urllib.error.HTTPError:
        return True  # any HTTP answer means the server is up
    except OSError:
        return False


def _with_enforced_credentials(url: str) -> S3Server:
    """Make moto check signatures, as real object storage does: an IAM user with an access key
    allowed everything, then authentication switched on (moto's /moto-api/reset-auth). Without
    this moto accepts any request, and a test could not tell whether the secret was used."""
    import json
    import urllib.request

    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=url,
        aws_access_key_id="bootstrap",
        aws_secret_access_key="bootstrap",
        region_name=REGION,
    )
    iam.create_user(UserName="citypipe")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="citypipe", PolicyName="all", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="citypipe")["AccessKey"]
    req = urllib.request.Request(
        f"{url}/moto-api/reset-auth",
        data=b"0",
        method="POST",
        headers={"Content-Type": "text/plain"},  # a form type would hide the body from moto
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    host_port = url.removeprefix("http://")
    return S3Server(host_port, key["AccessKeyId"], key["SecretAccessKey"])


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"moto[server] is not installed (a dev dependency: uv sync): {exc}")
    port = free_port()
    log_path: Path = tmp_path_factory.mktemp("moto") / "moto.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                out = log_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(f"moto server did not start on port {port}: {out}")
            time.sleep(0.1)
        server = _with_enforced_credentials(url)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def s3_bucket(s3_server: S3Server) -> S3Bucket:
    """A fresh, empty bucket of this test's own (moto keeps it in memory)."""
    name = f"citypipe-{uuid.uuid4().hex[:12]}"
    s3_server.client().create_bucket(Bucket=name)
    return S3Bucket(s3_server, name)


@pytest.fixture
def s3_settings(
    settings: Settings, s3_bucket: S3Bucket, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """``settings`` of the test's backend with the lake's data under s3://bucket/lake/."""
    server = s3_bucket.server
    for var, value in {
        "CITYPIPE_WAREHOUSE_DATA_PATH": f"s3://{s3_bucket.name}/lake/",
        "CITYPIPE_S3_ENDPOINT": server.endpoint,
        "CITYPIPE_S3_REGION": server.region,
        "CITYPIPE_S3_USE_SSL": "false",
        "CITYPIPE_S3_URL_STYLE": "path",
        "CITYPIPE_S3_ACCESS_KEY_ID": server.access_key_id,
        "CITYPIPE_S3_SECRET_ACCESS_KEY": server.secret_access_key,
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("CITYPIPE_S3_SECRET_ACCESS_KEY_FILE", raising=False)
    return get_settings()
