"""boto3 session -> S3 clients and a DuckDB S3 secret; httpfs loaded from its wheel.

Credentials always come from boto3 (profile, SSO, role, environment). logtap never reads or
stores them itself: it asks the session for the current frozen credentials and hands them to
DuckDB, and ``refresh_secret`` re-creates the secret when botocore has rotated them.
The S3 endpoint honours ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from logtap.errors import SourceError

if TYPE_CHECKING:  # pragma: no cover
    import duckdb


def make_session(session: Any = None, profile: str | None = None, region: str | None = None) -> Any:
    """The caller's boto3 session, or a new one for ``profile`` / ``region``."""
    if session is not None:
        return session
    import boto3
    from botocore.exceptions import ProfileNotFound

    try:
        return boto3.Session(profile_name=profile, region_name=region)
    except ProfileNotFound as exc:
        raise SourceError(f"AWS profile {profile!r} not found; check ~/.aws/config or drop --profile") from exc


def endpoint_url() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


class S3Clients:
    """One thread-safe S3 client per session, created on first use, tuned for many parallel GETs."""

    def __init__(self, session: Any, region: str | None = None, max_pool: int = 64) -> None:
        self.session = session
        self.region = region
        self.max_pool = max_pool
        self._client: Any = None
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            if self._client is None:
                from botocore.config import Config

                cfg = Config(max_pool_connections=self.max_pool, retries={"max_attempts": 5, "mode": "adaptive"})
                self._client = self.session.client("s3", region_name=self.region or None, config=cfg)
            return self._client


def httpfs_path() -> str | None:
    """The httpfs extension file shipped in the ``duckdb_extension_httpfs`` wheel, if installed."""
    try:
        import duckdb
        import duckdb_extension_httpfs
    except ImportError:
        return None
    base = os.path.dirname(duckdb_extension_httpfs.__file__)
    path = os.path.join(base, "extensions", f"v{duckdb.__version__}", "httpfs.duckdb_extension")
    return path if os.path.exists(path) else None


def load_httpfs(con: duckdb.DuckDBPyConnection) -> None:
    path = httpfs_path()
    if path:
        con.execute(f"LOAD '{path.replace(chr(39), chr(39) * 2)}'")
    else:  # pragma: no cover - only without the wheel
        con.execute("INSTALL httpfs")
        con.execute("LOAD httpfs")


def _sql_str(value: str) -> str:
    # CREATE SECRET takes no prepared parameters; credentials are quoted as SQL string literals.
    return "'" + value.replace("'", "''") + "'"


class DuckDBSecret:
    """Keeps a DuckDB S3 secret in step with a boto3 session's (possibly refreshing) credentials."""

    def __init__(self, con: duckdb.DuckDBPyConnection, session: Any, region: str | None = None) -> None:
        self.con = con
        self.session = session
        self.region = region or session.region_name or "us-east-1"
        self._last: tuple[str, str, str | None] | None = None
        load_httpfs(con)

    def refresh(self) -> None:
        """(Re)create the secret if the session's credentials changed since the last call."""
        creds = self.session.get_credentials()
        if creds is None:
            raise SourceError("no AWS credentials to read s3:// sources: run `aws configure` / "
                              "`aws sso login`, set AWS_PROFILE, or pass --profile")
        frozen = creds.get_frozen_credentials()
        current = (frozen.access_key, frozen.secret_key, frozen.token)
        if current == self._last:
            return
        opts = [
            "TYPE s3",
            f"KEY_ID {_sql_str(frozen.access_key)}",
            f"SECRET {_sql_str(frozen.secret_key)}",
            f"REGION {_sql_str(self.region)}",
        ]
        if frozen.token:
            opts.append(f"SESSION_TOKEN {_sql_str(frozen.token)}")
        url = endpoint_url()
        if url:
            parsed = urlparse(url if "://" in url else f"https://{url}")
            opts.append(f"ENDPOINT {_sql_str(parsed.netloc)}")
            opts.append("URL_STYLE 'path'")
            opts.append(f"USE_SSL {'true' if parsed.scheme == 'https' else 'false'}")
        self.con.execute("CREATE OR REPLACE SECRET logtap_s3 (" + ", ".join(opts) + ")")
        self._last = current
