"""--since/--until parsing and folder spans; boto3 credentials handed to DuckDB (and refreshed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pytest

from logtap.s3creds import DuckDBSecret, endpoint_url
from logtap.timerange import TimeError, TimeRange, parse_time

NOW = datetime(2025, 6, 10, 12, 30, tzinfo=timezone.utc)


def test_parse_time_forms() -> None:
    assert parse_time("2025-06-01", now=NOW) == datetime(2025, 6, 1, tzinfo=timezone.utc)
    assert parse_time("2025-06-01T10:00:00Z", now=NOW) == datetime(2025, 6, 1, 10, tzinfo=timezone.utc)
    assert parse_time("2025-06-01T12:00:00+02:00", now=NOW) == datetime(2025, 6, 1, 10, tzinfo=timezone.utc)
    assert parse_time("30m", now=NOW) == NOW - timedelta(minutes=30)
    assert parse_time("7d", now=NOW) == NOW - timedelta(days=7)
    with pytest.raises(TimeError, match="ISO 8601"):
        parse_time("last tuesday", now=NOW)
    with pytest.raises(TimeError, match="not before"):
        TimeRange.parse("2025-06-02", "2025-06-01")


def test_hour_prefixes_cover_range_plus_slack_and_collapse_whole_days() -> None:
    rng = TimeRange.parse("2025-06-01T10:20:00Z", "2025-06-01T12:00:00Z")
    assert rng.hour_prefixes() == ["2025/06/01/09/", "2025/06/01/10/", "2025/06/01/11/", "2025/06/01/12/"]
    days = TimeRange.parse("2025-06-01", "2025-06-03").hour_prefixes()
    assert days == ["2025/05/31/23/", "2025/06/01/", "2025/06/02/", "2025/06/03/00/"]
    assert not rng.prefix_may_match((2025, 6, 2)) and rng.prefix_may_match((2025, 6)) and rng.prefix_may_match((2025,))


def test_duckdb_secret_follows_refreshing_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from botocore.credentials import RefreshableCredentials

    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:4566")
    keys = iter(["AKIAFIRST0000000", "AKIASECOND000000"])

    def fetch() -> dict[str, Any]:
        return {"access_key": next(keys), "secret_key": "s3cr3t", "token": "tok",
                "expiry_time": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()}

    session = boto3.Session(region_name="eu-west-1")
    creds = RefreshableCredentials.create_from_metadata(fetch(), fetch, "test")
    session._session._credentials = creds
    con = duckdb.connect()
    secret = DuckDBSecret(con, session)
    secret.refresh()
    first = con.execute("SELECT secret_string FROM duckdb_secrets() WHERE name = 'logtap_s3'").fetchone()
    assert first and "AKIAFIRST" in first[0] and "127.0.0.1:4566" in first[0] and "eu-west-1" in first[0]
    creds._expiry_time = datetime.now(timezone.utc) - timedelta(seconds=1)  # botocore refreshes on next use
    secret.refresh()
    second = con.execute("SELECT secret_string FROM duckdb_secrets() WHERE name = 'logtap_s3'").fetchone()
    assert second and "AKIASECOND" in second[0]
    assert endpoint_url() == "http://127.0.0.1:4566"
