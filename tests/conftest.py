"""Shared test set-up. Real components: fixtures that start servers live in tests/support/."""

from __future__ import annotations

import importlib.util

import pytest

# aioboto3 pins an older botocore, so its tests run in their own venv (`make test-aioboto3`).
collect_ignore = [] if importlib.util.find_spec("aioboto3") else ["test_aioboto3.py"]

pytest_plugins = [
    "support.bedrock_fixtures",
    "support.s3_fixtures",
]


@pytest.fixture(autouse=True)
def _isolated_aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Never touch the developer's AWS config; give boto3 fake credentials and a Region."""
    empty = tmp_path_factory.getbasetemp() / "no-aws-config"
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN",
                "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(empty))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
