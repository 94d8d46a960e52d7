"""The caller's account id and identity ARN for sink records, found without slowing a call.

When a sink is attached to a client, one STS ``GetCallerIdentity`` starts on a background thread,
signed with that client's own credentials, in the client's Region (endpoint configuration such as
``AWS_ENDPOINT_URL_STS`` applies). The writer thread asks for the answer when it builds a record and
waits at most ``timeout`` seconds once; on any failure records carry the account id from an ARN
``modelId`` when there is one, else the placeholder ``000000000000``, and no ``identity``.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger("logtap.sink")

#: access key id -> (account id, identity ARN): one STS call per set of credentials per process.
_KNOWN: dict[str, tuple[str | None, str | None]] = {}


class IdentityLookup:
    def __init__(self, client: Any, *, timeout: float = 5.0) -> None:
        self._done = threading.Event()
        self._waited = False
        self._timeout = timeout
        self.account_id: str | None = None
        self.arn: str | None = None
        self._thread = threading.Thread(target=self._run, args=(client,), name="logtap-sink-sts", daemon=True)
        self._thread.start()

    def __call__(self) -> tuple[str | None, str | None]:
        if not self._done.is_set() and not self._waited:
            self._waited = True
            self._done.wait(self._timeout)
        return self.account_id, self.arn

    def _run(self, client: Any) -> None:
        try:
            keys = _frozen_keys(client)
            if keys is None:
                return
            import botocore.session
            from botocore.config import Config

            access, secret, token = keys
            if access in _KNOWN:
                self.account_id, self.arn = _KNOWN[access]
                return
            sts = botocore.session.get_session().create_client(
                "sts", region_name=client.meta.region_name, aws_access_key_id=access,
                aws_secret_access_key=secret, aws_session_token=token,
                config=Config(connect_timeout=2, read_timeout=3, retries={"max_attempts": 1}))
            answer = sts.get_caller_identity()
            self.account_id = answer.get("Account")
            self.arn = answer.get("Arn")
            _KNOWN[access] = (self.account_id, self.arn)
        except Exception as exc:
            log.info("logtap sink: caller identity unknown (%s); records use the placeholder account id",
                     type(exc).__name__)
        finally:
            self._done.set()


def _frozen_keys(client: Any) -> tuple[str, str, str | None] | None:
    """The client's current credentials, read the way its own signer reads them (never stored)."""
    credentials = getattr(getattr(client, "_request_signer", None), "_credentials", None)
    if credentials is None:
        return None
    getter = getattr(credentials, "get_frozen_credentials", None)
    frozen: Any = None
    if callable(getter):
        frozen = getter()
        if hasattr(frozen, "__await__"):  # aiobotocore: async refresh; use the current values
            frozen.close()
            frozen = credentials
    access = getattr(frozen, "access_key", None)
    secret = getattr(frozen, "secret_key", None)
    if not access or not secret:
        return None
    return access, secret, getattr(frozen, "token", None)
