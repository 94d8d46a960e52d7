"""AWS Lambda integration: tag every Bedrock call of one invocation with the Lambda context.

```python
import boto3, logtap
from logtap.lambda_handler import instrument_handler

bedrock = boto3.client("bedrock-runtime")

@instrument_handler(clients=[bedrock], tags={"project": "support-bot"}, sink="s3://my-logs/app")
def handler(event, context):
    return bedrock.converse(modelId=..., messages=[...])
```

For each invocation the decorator

1. instruments the clients given in ``clients`` (a list, or a callable returning one, evaluated at
   each invocation) once, and, with ``session=`` (a boto3 / botocore / aiobotocore session, or
   ``True`` for boto3's default session), every bedrock-runtime client that session creates;
2. runs the handler inside ``logtap.tags(...)`` holding ``tags`` plus the Lambda context under the
   key names of ``context_tags`` (default: ``lambda.function_name``, ``lambda.function_version``,
   ``lambda.request_id``, ``lambda.cold_start``; map a field to ``None`` to leave it out);
3. with ``sink=``, flushes the sink before returning (the sandbox may freeze right after), waiting
   at most ``flush_timeout`` seconds;
4. with ``logger=`` / ``metrics=``, writes the per-call log line / EMF metrics of ``logtap.metrics``.

``logtap_middleware`` is the same thing as a Powertools ``lambda_handler_decorator`` middleware:
``@logtap_middleware(clients=[bedrock], sink=...)``. Tags stop at the end of the invocation.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

log = logging.getLogger("logtap")

#: Lambda context field -> tag key. ``cold_start`` is "true" on a sandbox's first invocation.
DEFAULT_CONTEXT_TAGS: dict[str, str | None] = {
    "function_name": "lambda.function_name",
    "function_version": "lambda.function_version",
    "aws_request_id": "lambda.request_id",
    "cold_start": "lambda.cold_start",
}
DEFAULT_FLUSH_TIMEOUT = 5.0

_cold_start = True
H = TypeVar("H", bound=Callable[..., Any])


def lambda_context_tags(context: Any, names: Mapping[str, str | None], cold_start: bool) -> dict[str, str]:
    """The tags for one invocation's Lambda ``context`` (fields missing from it are left out)."""
    out: dict[str, str] = {}
    for field, key in names.items():
        if not key:
            continue
        value: Any = ("true" if cold_start else "false") if field == "cold_start" else getattr(
            context, field, None)
        if value is not None and value != "":
            out[key] = str(value)
    return out


class _Setup:
    """What the decorator does once per client / session, whatever the number of invocations."""

    def __init__(self, clients: Iterable[Any] | Callable[[], Iterable[Any]], session: Any, sink: Any,
                 logger: Any, metrics: Any) -> None:
        self.clients = clients
        self.session = session
        self.sink = sink
        self.logger = logger
        self.metrics = metrics
        self._done: set[int] = set()
        self._session_done = False

    def ensure(self) -> None:
        from logtap import middleware

        clients = self.clients() if callable(self.clients) else self.clients
        for client in clients:
            if id(client) in self._done:
                continue
            if not middleware.is_instrumented(client):
                middleware.instrument(client, sink=self.sink)
            elif self.sink is not None:
                from logtap.sink import attach

                attach(client, self.sink)
            if self.logger is not None or self.metrics is not None:
                from logtap.metrics import observe

                observe(client, logger=self.logger, metrics=self.metrics)
            self._done.add(id(client))
        if self.session is not None and not self._session_done:
            session = self.session
            if session is True:
                import boto3

                session = boto3._get_default_session()
            middleware.instrument_session(session, sink=self.sink)
            if self.logger is not None or self.metrics is not None:
                _observe_session(session, self.logger, self.metrics)
            self._session_done = True


def _observe_session(session: Any, logger: Any, metrics: Any) -> None:
    from logtap.metrics import observe

    emitter = getattr(session, "events", None) or session._session.get_component("event_emitter")

    def on_client(client: Any = None, **_: Any) -> None:
        if client is not None and client.meta.service_model.service_name == "bedrock-runtime":
            observe(client, logger=logger, metrics=metrics)

    emitter.register("after-client-creation", on_client, unique_id="logtap.lambda.observe")


def instrument_handler(handler: H | None = None, *, clients: Iterable[Any] | Callable[[], Iterable[Any]] = (),
                       session: Any = None, tags: Mapping[str, str] | None = None, sink: Any = None,
                       context_tags: Mapping[str, str | None] | None = None, logger: Any = None,
                       metrics: Any = None, flush_timeout: float = DEFAULT_FLUSH_TIMEOUT) -> Any:
    """Decorate a Lambda handler ``(event, context)``; usable bare or with options (see module doc)."""
    names = dict(DEFAULT_CONTEXT_TAGS if context_tags is None else context_tags)
    static = dict(tags or {})
    setup = _Setup(clients, session, sink, logger, metrics)

    def decorate(func: H) -> H:
        @functools.wraps(func)
        def wrapper(event: Any, context: Any, *args: Any, **kwargs: Any) -> Any:
            global _cold_start
            cold, _cold_start = _cold_start, False
            from logtap.context import tags as tag_scope

            try:
                setup.ensure()
                layer = {**static, **lambda_context_tags(context, names, cold)}
            except Exception:
                log.warning("logtap: could not set up the Lambda integration; the handler runs untagged",
                            exc_info=True)
                return func(event, context, *args, **kwargs)
            try:
                with tag_scope(layer):
                    return func(event, context, *args, **kwargs)
            finally:
                if sink is not None:
                    _flush(flush_timeout)

        return wrapper  # type: ignore[return-value]

    return decorate(handler) if handler is not None else decorate



def _flush(timeout: float) -> None:
    try:
        from logtap.sink import flush

        if not flush(timeout):
            log.warning("logtap: sink records still pending after %.1f s at the end of the invocation", timeout)
    except Exception:
        log.warning("logtap: flush at the end of the invocation failed", exc_info=True)


def _powertools_middleware(handler: Callable[..., Any], event: Any, context: Any, **options: Any) -> Any:
    key = tuple(sorted((k, id(v)) for k, v in options.items()))
    wrapped = _MIDDLEWARE_CACHE.get((id(handler), key))
    if wrapped is None:
        wrapped = instrument_handler(handler, **options)
        _MIDDLEWARE_CACHE[(id(handler), key)] = wrapped
    return wrapped(event, context)


_MIDDLEWARE_CACHE: dict[tuple[int, tuple[tuple[str, int], ...]], Callable[..., Any]] = {}


def __getattr__(name: str) -> Any:
    if name == "logtap_middleware":  # built on first use: importing Powertools costs cold-start time
        from aws_lambda_powertools.middleware_factory import lambda_handler_decorator

        middleware = lambda_handler_decorator(_powertools_middleware)
        globals()[name] = middleware
        return middleware
    raise AttributeError(f"module 'logtap.lambda_handler' has no attribute {name!r}")
