"""Tag every ``bedrock-runtime`` call with ``requestMetadata``: ``instrument`` / ``uninstrument``.

How it hooks botocore: per client, through ``client.meta.events`` (no global patching).

* Tags are resolved per call from the call's own ``requestMetadata`` > innermost ``logtap.tags`` >
  outer ``logtap.tags`` > ``instrument(tags=...)``.
* Converse / ConverseStream, ``before-parameter-build`` (sees the final parameters): when the call
  has no ``requestMetadata`` of its own, the resolved tags (already checked against the model's
  limits) are NOT added as a parameter: ``before-call`` splices them into the JSON body botocore
  has just serialized (``{..., "requestMetadata": {...}}``, the very bytes botocore would have
  produced), which skips botocore validating and serializing the map again on every call (about
  10-20 us). The JSON of the tags is cached per tag set. Content-Length and the SigV4 payload hash
  are computed later, from the final body. When the call has its own ``requestMetadata``, the
  merged map goes through the parameter instead.
* InvokeModel / InvokeModelWithResponseStream, ``before-call`` (with every botocore, whether or not
  its model knows ``requestMetadata``): the merged tags, as compact JSON cached per tag set, go
  straight into the ``X-Amzn-Bedrock-Request-Metadata`` header of the request botocore has just
  serialized, before it signs it (so the header is in ``SignedHeaders``). Passing them as the
  ``requestMetadata`` parameter instead would make botocore validate and serialize the value on
  every call (about 28k instructions, 3-4 us). The caller's own ``requestMetadata`` (which botocore
  serialized to that header) or a header another hook added is merged there, the caller winning.
* The exact dict sent is stored in botocore's per-request context as
  ``context["logtap_request_metadata"]`` (absent when no tags are sent); the sink reads it there.

Every hook is a plain synchronous function touching only ``params``/``request``/``context``, so
aiobotocore's async emitter runs it too. Every hook body runs inside a guard: an internal error is
logged at WARNING (without tag values) and the call proceeds untouched. Only ``strict=True`` makes
logtap raise (``TagError``), before any request.
"""

from __future__ import annotations

import functools
import json
import logging
import weakref
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar, cast

from logtap import context as _context
from logtap.errors import TagError
from logtap.tagrules import (
    Problem,
    TagRules,
    check_tag,
    filter_unsafe,
    json_too_long,
    rules_from_service_model,
    too_many,
    validate,
)

__all__ = [
    "CONTEXT_KEY",
    "HEADER",
    "instrument",
    "instrument_session",
    "is_instrumented",
    "uninstrument",
    "uninstrument_session",
]

log = logging.getLogger("logtap")

SERVICE_ID = "bedrock-runtime"
CONTEXT_KEY = "logtap_request_metadata"
HEADER = "X-Amzn-Bedrock-Request-Metadata"
_HEADER_LOWER = HEADER.lower()
_SPLICE_KEY = "logtap_pending_body"
_BODY_KEY = b'"requestMetadata": '
_STATE_ATTR = "_logtap_state"
_SESSION_ATTR = "_logtap_session_settings"
_SESSION_UNIQUE_ID = "logtap.session"
CONVERSE_OPS = ("Converse", "ConverseStream")
INVOKE_OPS = ("InvokeModel", "InvokeModelWithResponseStream")
_MAX_WARNED = 4096

_ENCODER = json.JSONEncoder(separators=(",", ":"))
# What botocore's rest-json serializer uses (``json.dumps`` defaults), so a spliced body is
# byte-identical to the one botocore builds when the same map is passed as ``requestMetadata``.
_BODY_ENCODER = json.JSONEncoder()
_JSON_SPACE = frozenset(b" \t\r\n")

# Instrumented clients with strict=True; `logtap.tags(...)` checks its tags against them on entry.
_STRICT: weakref.WeakSet[_ClientState] = weakref.WeakSet()

H = TypeVar("H", bound=Callable[..., None])


def _strict_checks() -> Iterable[Callable[[Mapping[str, str]], None]]:
    return [state.check_layer for state in list(_STRICT)]


_context._strict_checks = _strict_checks


def _guarded(hook: H) -> H:
    """Run a hook so that no internal error can reach the caller (strict TagError excepted)."""

    @functools.wraps(hook)
    def guard(self: _ClientState, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except TagError:
            if self.strict:
                raise
            _internal_error(hook.__name__)
        except Exception:  # fail open: the caller's call must go on
            _internal_error(hook.__name__)

    return cast(H, guard)


def _internal_error(where: str) -> None:
    log.warning("logtap: internal error in hook %s; the call proceeds without logtap's changes", where)
    log.debug("logtap: internal error in hook %s", where, exc_info=True)


class _Cache:
    """The merged ``logtap.tags`` + ``instrument(tags=)`` result for one context stack."""

    __slots__ = ("base", "json", "member", "stack", "version")

    def __init__(self, stack: object, version: int, base: dict[str, str]) -> None:
        self.stack = stack
        self.version = version
        self.base = base
        self.json: str | None = None  # InvokeModel* header value
        self.member: bytes | None = None  # Converse* body member, see _body_member


class _ClientState:
    """Per-client settings and hooks, kept on the client as ``client._logtap_state``."""

    def __init__(self, rules: TagRules, invoke_param_ops: frozenset[str]) -> None:
        self.rules = rules
        # InvokeModel* operations whose model knows ``requestMetadata`` (informational: the tags go in
        # the header through before-call either way).
        self.invoke_param_ops = invoke_param_ops
        self.tags: dict[str, str] = {}
        self.strict = False
        self.sink_attached = False
        self.version = 0
        self.cache = _Cache(None, -1, {})
        self.warned: set[tuple[str, str, str]] = set()

    # -- reporting -------------------------------------------------------------------------
    def report(self, problem: Problem, where: str) -> None:
        """Raise (strict, dropped problems) or warn once per key and problem."""
        if problem.dropped and self.strict:
            raise TagError(f"{where}: tag {problem.key!r}: {problem.message}")
        marker = (problem.key, problem.code, where)
        if marker in self.warned:
            return
        if len(self.warned) >= _MAX_WARNED:
            self.warned.clear()
        self.warned.add(marker)
        action = "dropped" if problem.dropped else "sent"
        log.warning("logtap: %s: tag %r %s: %s", where, problem.key, action, problem.message)

    def check_layer(self, layer: Mapping[str, str]) -> None:
        """Strict entry check for ``logtap.tags(...)``: raise TagError for the first bad tag."""
        kept, problems = validate(self.rules, layer)
        for problem in problems:
            if problem.dropped:
                raise TagError(f"logtap.tags(...): tag {problem.key!r}: {problem.message}")

    def configure(self, tags: Mapping[Any, Any] | None, strict: bool) -> None:
        static, problems = validate(self.rules, tags or {})
        self.strict = strict
        for problem in problems:
            self.report(problem, "instrument(tags=...)")
        self.tags = static
        self.version += 1

    # -- hooks -----------------------------------------------------------------------------
    @_guarded
    def on_converse_params(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        base = _base_tags(self, _context.current_stack())
        if "requestMetadata" not in params and base:
            # No metadata of the caller's: splice the checked tags into the serialized body in
            # before-call; the params stay as the caller gave them.
            context[_SPLICE_KEY] = (params, _body_member(self, base))
            context[CONTEXT_KEY] = dict(base)
        elif "requestMetadata" in params:
            caller = params["requestMetadata"]
            if not isinstance(caller, Mapping):
                return  # not ours to fix: botocore reports it exactly as without logtap
            merged = _merge(self, base, caller)
            if merged is not caller:
                params["requestMetadata"] = merged  # a new dict: the caller's own is not mutated
            if merged:
                context[CONTEXT_KEY] = merged

    @_guarded
    def on_before_call_body(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """Converse*: add ``"requestMetadata": {...}`` to the JSON body botocore serialized."""
        pending = context.pop(_SPLICE_KEY, None)
        if pending is None:
            return
        api_params, member = pending
        sent = context.pop(CONTEXT_KEY, None)  # put back only once the tags really are in the body
        if "requestMetadata" in api_params:  # set by another hook after ours: botocore serialized it
            theirs = api_params["requestMetadata"]
            if isinstance(theirs, Mapping) and theirs:
                context[CONTEXT_KEY] = theirs
            return
        body = _splice(params.get("body"), member)
        if body is None:
            log.warning("logtap: the Converse request body is not a JSON object; this call is sent without "
                        "logtap's tags")
            return
        params["body"] = body
        context[CONTEXT_KEY] = sent

    @_guarded
    def on_before_call_header(self, params: dict[str, Any], context: dict[str, Any], **_: Any) -> None:
        """InvokeModel*: the tags header, written into the request botocore has just serialized.

        Runs on ``before-call`` (before signing: the header is in ``SignedHeaders``) with every botocore,
        whether or not its model knows ``requestMetadata``. The caller's own metadata (the parameter,
        which botocore serialized to this header, or a header another hook added) is merged here."""
        headers: dict[str, Any] = params["headers"]
        base = _base_tags(self, _context.current_stack())
        existing: list[str] = []
        for name in headers:  # a loop, not a comprehension: no extra frame (a few headers only)
            if name.lower() == _HEADER_LOWER:
                existing.append(name)
        if existing:
            result = _merge_caller_json(self, base, headers[existing[0]])
            if result is None:
                return
            merged, text = result
            if text is not headers[existing[0]] or len(existing) > 1:  # logtap added tags: one merged header
                new: dict[str, Any] = {}
                _put_header(new, text)  # first: a failure here leaves the caller's header as it was
                for name in existing:
                    del headers[name]
                headers.update(new)
            if merged:
                context[CONTEXT_KEY] = merged
        elif base:
            merged, text = _base_json(self, base)
            _put_header(headers, text)
            context[CONTEXT_KEY] = merged


def _base_tags(state: _ClientState, stack: tuple[Mapping[str, str], ...]) -> dict[str, str]:
    """``logtap.tags`` layers (innermost first) over ``instrument(tags=)``, checked and capped."""
    cache = state.cache
    if cache.stack is stack and cache.version == state.version:
        return cache.base
    if not stack:
        merged = dict(state.tags)
    else:
        rules = state.rules
        merged = {}
        for layer in reversed(stack):
            for key, value in layer.items():
                if key in merged:
                    continue
                problem = check_tag(rules, key, value)
                if problem is None and len(merged) >= rules.max_entries:
                    problem = too_many(rules, key)
                if problem is not None:
                    state.report(problem, "logtap.tags(...)")
                    continue
                warning = filter_unsafe(key, value)
                if warning is not None:
                    state.report(warning, "logtap.tags(...)")
                merged[key] = value
        for key, value in state.tags.items():
            if key in merged:
                continue
            if len(merged) >= rules.max_entries:
                state.report(too_many(rules, key), "instrument(tags=...)")
                continue
            merged[key] = value
    state.cache = _Cache(stack, state.version, merged)
    return merged


def _merge(state: _ClientState, base: Mapping[str, str], caller: Mapping[Any, Any]) -> dict[str, Any]:
    """The call's own metadata over ``base``. The caller's entries are never changed or dropped."""
    rules = state.rules
    for key, value in caller.items():
        problem = check_tag(rules, key, value)
        if problem is not None:
            if not state.strict:  # the caller's own value is sent as given: warn only
                problem = Problem(problem.key, problem.code,
                                  problem.message + "; Bedrock will likely reject the call", False)
            state.report(problem, "requestMetadata of the call")
        elif isinstance(key, str) and isinstance(value, str):
            warning = filter_unsafe(key, value)
            if warning is not None:
                state.report(warning, "requestMetadata of the call")
    if not base:
        return caller  # type: ignore[return-value]
    merged: dict[str, Any] = {**base, **caller}
    if len(merged) <= rules.max_entries:
        return merged
    merged = dict(caller)
    for key, value in base.items():
        if key in merged:
            continue
        if len(merged) >= rules.max_entries:
            state.report(too_many(rules, key), "merged with requestMetadata of the call")
            continue
        merged[key] = value
    return merged


def _body_member(state: _ClientState, base: dict[str, str]) -> bytes:
    """``"requestMetadata": {...}}``: the tail spliced into a Converse body, cached per tag set."""
    cache = state.cache
    if cache.base is base and cache.member is not None:
        return cache.member
    member = _BODY_KEY + _BODY_ENCODER.encode(base).encode("ascii") + b"}"
    if cache.base is base:
        cache.member = member
    return member


def _splice(body: object, member: bytes) -> bytes | None:
    """``body`` (a serialized JSON object) with ``member`` as its last entry; None if not an object.

    ``member`` ends with the object's closing brace. One copy of the body, no parsing: the body
    comes from botocore's own serializer and the caller's params had no ``requestMetadata``.
    """
    if not isinstance(body, (bytes, bytearray)):
        return None
    end = len(body) - 1
    while end >= 0 and body[end] in _JSON_SPACE:
        end -= 1
    start = 0
    while start < end and body[start] in _JSON_SPACE:
        start += 1
    if end <= start or body[start] != 0x7B or body[end] != 0x7D:  # not "{...}"
        return None
    last = end - 1
    while last > start and body[last] in _JSON_SPACE:
        last -= 1
    view = memoryview(body)
    if last == start:  # an empty object: botocore sends b"{}" for a call with no body members
        return b"".join((view[: start + 1], member))
    return b"".join((view[: last + 1], b", ", member))


def _parse_caller_json(raw: object) -> dict[str, Any] | None:
    """The caller's Invoke ``requestMetadata`` JSON as a dict, or None (left untouched, warned)."""
    if not isinstance(raw, str):
        return None  # botocore reports a wrong type exactly as without logtap
    try:
        parsed = json.loads(raw)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        log.warning(
            "logtap: the call's requestMetadata is not a JSON object; it is sent untouched and "
            "logtap adds no tags to this call"
        )
        return None
    return parsed


def _merge_caller_json(state: _ClientState, base: Mapping[str, str], raw: object
                       ) -> tuple[dict[str, Any], str] | None:
    """InvokeModel*: the caller's JSON metadata text merged with ``base`` (the caller wins), as
    (dict sent, JSON text). The caller's own text goes out untouched when logtap adds nothing; None
    when it is not a JSON object (then nothing is changed)."""
    caller = _parse_caller_json(raw)
    if caller is None:
        return None
    merged = _merge(state, base, caller)
    if merged is caller:
        assert isinstance(raw, str)  # _parse_caller_json accepts only text
        return caller, raw
    return _fit_json(state, merged, caller)


def _dump(metadata: Mapping[str, Any]) -> str:
    return _ENCODER.encode(metadata)


def _base_json(state: _ClientState, base: dict[str, str]) -> tuple[dict[str, str], str]:
    cache = state.cache
    if cache.base is base and cache.json is not None:
        return dict(base), cache.json
    merged, text = _fit_json(state, dict(base), {})
    if cache.base is base and len(merged) == len(base):
        cache.json = text
    return merged, text


def _fit_json(
    state: _ClientState, merged: dict[str, Any], caller: Mapping[Any, Any]
) -> tuple[dict[str, Any], str]:
    """Compact JSON of ``merged``; lowest-precedence non-caller tags go while it is too long."""
    text = _dump(merged)
    limit = state.rules.json_max
    if len(text) <= limit:
        return merged, text
    for key in reversed([k for k in merged if k not in caller]):
        del merged[key]
        state.report(json_too_long(state.rules, key), "InvokeModel request metadata")
        text = _dump(merged)
        if len(text) <= limit:
            break
    return merged, text


def _put_header(headers: dict[str, Any], text: str) -> None:
    headers[HEADER] = text


# -- public API ------------------------------------------------------------------------------------
def _service_id(client: Any) -> str:
    try:
        service_id: str = client.meta.service_model.service_id.hyphenize()
    except AttributeError:
        raise TypeError(
            f"logtap.instrument() takes a boto3/botocore client, got {type(client).__name__}"
        ) from None
    if service_id != SERVICE_ID:
        raise TypeError(
            f"logtap.instrument() takes a 'bedrock-runtime' client, got a {service_id!r} client; "
            "create it with boto3.client('bedrock-runtime')"
        )
    return service_id


def _state_of(client: Any) -> _ClientState | None:
    state = vars(client).get(_STATE_ATTR)
    return state if isinstance(state, _ClientState) else None


def is_instrumented(client: Any) -> bool:
    """True when ``client`` carries logtap's hooks."""
    return _state_of(client) is not None


def _registrations(state: _ClientState) -> list[tuple[str, Callable[..., None], str]]:
    regs: list[tuple[str, Callable[..., None], str]] = []
    for op in CONVERSE_OPS:
        regs.append((f"before-parameter-build.{SERVICE_ID}.{op}", state.on_converse_params,
                     f"logtap.params.{op}"))
        regs.append((f"before-call.{SERVICE_ID}.{op}", state.on_before_call_body, f"logtap.body.{op}"))
    for op in INVOKE_OPS:
        regs.append((f"before-call.{SERVICE_ID}.{op}", state.on_before_call_header, f"logtap.header.{op}"))
    return regs


def _invoke_param_ops(service_model: Any) -> frozenset[str]:
    """The InvokeModel* operations whose model has the ``requestMetadata`` parameter (per operation)."""
    known = set()
    for op in INVOKE_OPS:
        try:
            if "requestMetadata" in service_model.operation_model(op).input_shape.members:
                known.add(op)
        except Exception:  # an operation missing from the model: use the header
            pass
    return frozenset(known)


def instrument(
    client: Any, *, tags: Mapping[str, str] | None = None, sink: Any = None, strict: bool = False
) -> Any:
    """Add request-metadata tagging to a ``bedrock-runtime`` client and return the same client.

    ``tags`` apply to every call (lowest precedence). A tag that breaks Bedrock's limits (read from
    the client's service model) is dropped with one warning on the ``logtap`` logger; with
    ``strict=True`` it raises ``TagError`` here, in ``logtap.tags(...)`` on entry, or at call time
    before any request. ``sink`` (a folder or ``s3://`` URI) also writes a client-side invocation
    log through ``logtap.sink.attach``. Calling it again on the same client replaces the settings
    (``tags``, ``strict``; a new ``sink`` replaces the old one, ``sink=None`` detaches it); hooks
    are never registered twice.
    """
    _service_id(client)
    state = _state_of(client)
    if state is None:
        service_model = client.meta.service_model
        new = _ClientState(rules_from_service_model(service_model), _invoke_param_ops(service_model))
        new.configure(tags, strict)  # may raise TagError (strict) before the client is touched
        events = client.meta.events
        for event, handler, unique_id in _registrations(new):
            events.register(event, handler, unique_id=unique_id)
        setattr(client, _STATE_ATTR, new)
        state = new
    else:
        # Validate into a scratch state first so a strict TagError leaves the old settings intact.
        scratch = _ClientState(state.rules, state.invoke_param_ops)
        scratch.warned = state.warned
        scratch.configure(tags, strict)
        state.tags, state.strict = scratch.tags, scratch.strict
        state.version += 1
    if state.strict:
        _STRICT.add(state)
    else:
        _STRICT.discard(state)
    if sink is not None:
        _attach_sink(client, sink)
        state.sink_attached = True
    elif state.sink_attached:
        _detach_sink(client)
        state.sink_attached = False
    log.debug("logtap: instrumented a bedrock-runtime client with %d static tags", len(state.tags))
    return client


def uninstrument(client: Any) -> Any:
    """Remove logtap's hooks (and sink) from ``client``; a no-op for a client never instrumented."""
    state = _state_of(client)
    _detach_sink(client)
    if state is None:
        return client
    events = client.meta.events
    for event, _handler, unique_id in _registrations(state):
        events.unregister(event, unique_id=unique_id)
    _STRICT.discard(state)
    delattr(client, _STATE_ATTR)
    return client


def _attach_sink(client: Any, sink: Any) -> None:
    from logtap import sink as sink_module

    attach = getattr(sink_module, "attach", None)
    if attach is None:
        log.warning("logtap: sink= was given but this logtap has no client-side sink yet; tags still apply")
        return
    attach(client, sink)


def _detach_sink(client: Any) -> None:
    from logtap import sink as sink_module

    detach = getattr(sink_module, "detach", None)
    if detach is not None:
        detach(client)


# -- sessions --------------------------------------------------------------------------------------
class _SessionSettings:
    __slots__ = ("sink", "strict", "tags")

    def __init__(self, tags: dict[str, Any] | None, sink: Any, strict: bool) -> None:
        self.tags = tags
        self.sink = sink
        self.strict = strict


class _InstrumentOnInit:
    """Mixin placed first in the bases of bedrock-runtime client classes an instrumented session makes."""

    _logtap_session_settings: _SessionSettings

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        try:
            settings = type(self)._logtap_session_settings
            instrument(self, tags=settings.tags, sink=settings.sink, strict=settings.strict)
        except Exception:  # creating the client must not fail because of logtap
            log.warning("logtap: could not instrument a new bedrock-runtime client; it works untagged")
            log.debug("logtap: instrument_session failure", exc_info=True)


def _session_emitter(session: Any) -> Any:
    events = getattr(session, "events", None)  # boto3.Session
    if events is not None and hasattr(events, "register"):
        return events
    get_component = getattr(session, "get_component", None)  # botocore / aiobotocore session
    if get_component is not None:
        return get_component("event_emitter")
    raise TypeError(
        f"logtap.instrument_session() takes a boto3.Session or botocore session, got {type(session).__name__}"
    )


def _session_rules(session: Any) -> TagRules:
    """The limits in the model this session's loader finds (sync for botocore and aiobotocore)."""
    botocore_session = getattr(session, "_session", session)  # boto3.Session wraps a botocore one
    try:
        from botocore.model import ServiceModel

        loader = botocore_session.get_component("data_loader")
        return rules_from_service_model(ServiceModel(loader.load_service_model(SERVICE_ID, "service-2"),
                                                     service_name=SERVICE_ID))
    except Exception:  # the documented defaults; each client re-reads its own model anyway
        return rules_from_service_model(None)


def instrument_session(
    session: Any, *, tags: Mapping[str, str] | None = None, sink: Any = None, strict: bool = False
) -> Any:
    """Instrument every ``bedrock-runtime`` client ``session`` creates from now on; returns ``session``.

    Works with ``boto3.Session`` and botocore (or aiobotocore) sessions, through the session's
    ``creating-client-class`` event. Clients created earlier are not touched. Calling it again
    updates the settings for clients created afterwards.
    """
    emitter = _session_emitter(session)
    scratch = _ClientState(_session_rules(session), frozenset(INVOKE_OPS))
    scratch.configure(tags, strict)  # strict: TagError now, before any client exists
    settings = vars(session).get(_SESSION_ATTR)
    if isinstance(settings, _SessionSettings):
        settings.tags, settings.sink, settings.strict = dict(tags or {}), sink, strict
        return session
    settings = _SessionSettings(dict(tags or {}), sink, strict)

    def add_mixin(class_attributes: dict[str, Any], base_classes: list[type], **_: Any) -> None:
        try:
            class_attributes["_logtap_session_settings"] = settings
            if _InstrumentOnInit not in base_classes:
                base_classes.insert(0, _InstrumentOnInit)
        except Exception:
            _internal_error("instrument_session")

    emitter.register(f"creating-client-class.{SERVICE_ID}", add_mixin, unique_id=_SESSION_UNIQUE_ID)
    setattr(session, _SESSION_ATTR, settings)
    return session


def uninstrument_session(session: Any) -> Any:
    """Stop instrumenting new clients of ``session``. Clients it already made stay instrumented."""
    emitter = _session_emitter(session)
    emitter.unregister(f"creating-client-class.{SERVICE_ID}", unique_id=_SESSION_UNIQUE_ID)
    if _SESSION_ATTR in vars(session):
        delattr(session, _SESSION_ATTR)
    return session
