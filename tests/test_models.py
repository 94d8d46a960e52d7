from __future__ import annotations

import duckdb
import pytest

from logtap.models import model_family, model_matches, normalize_model_id, sql_normalized_model_id

CASES = [
    ("anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("us.anthropic.claude-3-5-haiku-20241022-v1:0", "anthropic.claude-3-5-haiku-20241022-v1:0"),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", "anthropic.claude-opus-4-5-20251101-v1:0"),
    ("apac.amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
    ("us-gov.meta.llama3-8b-instruct-v1:0", "meta.llama3-8b-instruct-v1:0"),
    ("amazon.nova-lite-v1:0:300k", "amazon.nova-lite-v1:0"),
    (
        "arn:aws:bedrock:us-east-1:111122223333:inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0",
        "anthropic.claude-haiku-4-5-20251001-v1:0",
    ),
    ("arn:aws:bedrock:us-east-1::foundation-model/meta.llama3-1-70b-instruct-v1:0", "meta.llama3-1-70b-instruct-v1:0"),
    (
        "arn:aws:bedrock:us-east-2:111111111111:application-inference-profile/abc123",
        "arn:aws:bedrock:us-east-2:111111111111:application-inference-profile/abc123",
    ),
    ("meta.llama2-13b-chat-v1", "meta.llama2-13b-chat-v1"),
]


@pytest.mark.parametrize(("raw", "base"), CASES)
def test_normalize_python_and_sql_agree(raw: str, base: str) -> None:
    assert normalize_model_id(raw) == base
    sql = f"SELECT {sql_normalized_model_id('m')} FROM (SELECT ? AS m)"
    row = duckdb.execute(sql, [raw]).fetchone()
    assert row is not None and row[0] == base


def test_model_matches_any_form() -> None:
    assert model_matches("us.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0")
    assert model_matches("arn:aws:bedrock:us-east-1:1:inference-profile/eu.amazon.nova-pro-v1:0", "apac.amazon.nova-pro-v1:0")
    assert not model_matches("amazon.nova-lite-v1:0", "amazon.nova-pro-v1:0")
    assert not model_matches(None, "amazon.nova-pro-v1:0")


def test_family() -> None:
    assert model_family("us.anthropic.claude-3-5-haiku-20241022-v1:0") == "anthropic"
    assert model_family("amazon.titan-text-express-v1") == "amazon-titan"
    assert model_family("amazon.nova-micro-v1:0:128k") == "amazon-nova"
    assert model_family("mistral.mistral-7b-instruct-v0:2") == "mistral"
    assert model_family("arn:aws:bedrock:us-east-2:1:application-inference-profile/abc") == "unknown"
