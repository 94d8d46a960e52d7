"""moto's S3 server on 127.0.0.1, shared by every test that reads or writes ``s3://``.

Fixtures (registered for all tests through ``tests/conftest.py``):

* ``moto_server`` (session): a ``ThreadedMotoServer`` on 127.0.0.1 and a free port; its URL.
* ``s3_endpoint``: sets ``AWS_ENDPOINT_URL_S3`` to that URL for the test (monkeypatch), so boto3 and
  logtap's DuckDB secret both reach moto only through the standard variable; returns the URL.
* ``s3_bucket``: a fresh, empty bucket (unique name) on that server; returns its name. Use
  ``s3_client`` (a boto3 S3 client) to put objects, or ``support.records.write_s3_logs``.

DuckDB httpfs reaches it with ``ENDPOINT '127.0.0.1:<port>'``, ``URL_STYLE 'path'``, ``USE_SSL false``
(``logtap.s3creds`` derives those from ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

_counter = itertools.count()


@pytest.fixture(scope="session")
def moto_server() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_endpoint(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", moto_server)
    return moto_server


@pytest.fixture
def s3_client(s3_endpoint: str) -> Any:
    import boto3

    return boto3.client("s3", region_name="us-east-1")


@pytest.fixture
def s3_bucket(s3_client: Any) -> str:
    name = f"logtap-test-{next(_counter)}"
    s3_client.create_bucket(Bucket=name)
    return name
