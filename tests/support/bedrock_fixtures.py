"""Fixtures for a local bedrock-runtime HTTP endpoint (see ``support.bedrock_server``).

* ``bedrock_server``: a started ``BedrockServer`` (one per test session), cleared for each test.
* ``runtime_client``: a real ``boto3.client("bedrock-runtime")`` pointed at it, fake credentials,
  region us-east-1, retries off.
* ``make_runtime_client``: factory ``make_runtime_client(session=None)`` for more such clients
  (from a given boto3.Session, botocore session or aiobotocore session is not supported here).
* ``old_botocore_session``: a real botocore session whose loader finds a copy of the
  bedrock-runtime service model without ``requestMetadata`` on InvokeModel /
  InvokeModelWithResponseStream, i.e. a botocore "too old" to know that parameter.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support.bedrock_server import BedrockServer

SERVICE = "bedrock-runtime"
FAKE_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


def client_config() -> Any:
    from botocore.config import Config

    return Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)


def new_runtime_client(url: str, session: Any = None) -> Any:
    """A bedrock-runtime client for the local server from a boto3.Session, botocore session or boto3."""
    import boto3

    kwargs: dict[str, Any] = dict(endpoint_url=url, region_name="us-east-1", config=client_config(),
                                  **FAKE_CREDENTIALS)
    if session is None:
        return boto3.client(SERVICE, **kwargs)
    if hasattr(session, "resource"):  # boto3.Session
        return session.client(SERVICE, **kwargs)
    return session.create_client(SERVICE, **kwargs)  # botocore session


def remove_invoke_metadata(model: dict[str, Any]) -> None:
    """Make a model look like a botocore that predates requestMetadata on InvokeModel*."""
    for op in ("InvokeModel", "InvokeModelWithResponseStream"):
        shape_name = model["operations"][op]["input"]["shape"]
        model["shapes"][shape_name]["members"].pop("requestMetadata", None)


def write_model(data_root: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Copy botocore's bedrock-runtime model under ``data_root`` after ``edit(model)`` changed it."""
    import botocore.session

    loader = botocore.session.get_session().get_component("data_loader")
    api_version = loader.determine_latest_version(SERVICE, "service-2")
    model = loader.load_service_model(SERVICE, "service-2", api_version)
    model = json.loads(json.dumps(model))  # a private deep copy
    edit(model)
    target = data_root / SERVICE / api_version
    target.mkdir(parents=True, exist_ok=True)
    with gzip.open(target / "service-2.json.gz", "wt", encoding="utf-8") as fh:
        json.dump(model, fh)
    return data_root


def session_with_model(data_root: Path, edit: Callable[[dict[str, Any]], None]) -> Any:
    """A real botocore session whose loader finds the edited model before botocore's own."""
    import botocore.session

    write_model(data_root, edit)
    session = botocore.session.get_session()
    session.get_component("data_loader").search_paths.insert(0, str(data_root))
    return session


def old_botocore(data_root: Path) -> Any:
    """A real botocore session too old to know requestMetadata for InvokeModel*."""
    return session_with_model(data_root, remove_invoke_metadata)


@pytest.fixture(scope="session")
def _bedrock_server_instance() -> Iterator[BedrockServer]:
    server = BedrockServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bedrock_server(_bedrock_server_instance: BedrockServer) -> Iterator[BedrockServer]:
    _bedrock_server_instance.clear()
    yield _bedrock_server_instance
    _bedrock_server_instance.clear()


@pytest.fixture
def runtime_client(bedrock_server: BedrockServer) -> Any:
    return new_runtime_client(bedrock_server.url)


@pytest.fixture
def make_runtime_client(bedrock_server: BedrockServer) -> Callable[..., Any]:
    def make(session: Any = None) -> Any:
        return new_runtime_client(bedrock_server.url, session)

    return make


@pytest.fixture
def old_botocore_session(tmp_path: Path) -> Any:
    return old_botocore(tmp_path / "botocore-data")
