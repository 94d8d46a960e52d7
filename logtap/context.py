"""``logtap.tags(...)``: request-metadata tags for everything called inside a block or function.

Backed by one ``contextvars.ContextVar`` holding an immutable stack of layers (outer first), so
tags follow the code: they apply in asyncio tasks created inside the block (tasks copy the
context), in threads that run ``contextvars.copy_context().run(...)``, and they nest; the
innermost value of a key wins. A plain ``threading.Thread`` or ``ThreadPoolExecutor`` worker does
not copy the caller's context, so it does not see the tags unless you pass the context along.

Validation against a client's limits happens per client at call time (see
``logtap.middleware``). Entry-time checks: a key or value that is not a ``str`` is dropped with a
warning, and when any instrumented client is ``strict``, entering ``tags(...)`` with a tag that
breaks that client's limits raises ``TagError`` before anything else runs.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, TypeVar, cast

from logtap.errors import TagError

__all__ = ["current_tags", "tags"]

log = logging.getLogger("logtap")

Layer = Mapping[str, str]
Stack = tuple[Layer, ...]

# The stack of active layers, outer first. Tuples are immutable, so a stack object is a cheap,
# stable cache key for the middleware (compared by identity).
_STACK: ContextVar[Stack] = ContextVar("logtap_tags", default=())

F = TypeVar("F", bound=Callable[..., Any])

# Set by logtap.middleware: returns the strict checks to run when a layer is entered.
# Each check raises TagError for a bad tag. Kept as a hook so this module imports nothing heavy.
_strict_checks: Callable[[], Iterable[Callable[[Layer], None]]] | None = None


def current_stack() -> Stack:
    """The active layers, outer first (internal; used by the middleware per call)."""
    return _STACK.get()


def current_tags() -> dict[str, str]:
    """The tags of every enclosing ``logtap.tags(...)``, merged outer to inner (inner wins)."""
    merged: dict[str, str] = {}
    for layer in _STACK.get():
        merged.update(layer)
    return merged


def _make_layer(kv: Mapping[Any, Any]) -> dict[str, str]:
    layer: dict[str, str] = {}
    for key, value in kv.items():
        if isinstance(key, str) and isinstance(value, str):
            layer[key] = value
            continue
        what = "key" if not isinstance(key, str) else "value"
        bad = key if what == "key" else value
        message = (
            f"logtap.tags(): tag {str(key)!r}: the {what} is a {type(bad).__name__}, not a str; "
            "pass tags as strings"
        )
        if _strict_checks is not None and any(True for _ in _strict_checks()):
            raise TagError(message)
        log.warning("%s (tag dropped)", message)
    return layer


class tags:  # used like a function: `with logtap.tags(team="x"):`
    """Context manager and decorator adding request-metadata tags for the code inside it.

    ``with logtap.tags(team="search", env="prod"): client.converse(...)``

    Keys that are not Python identifiers (``"cost:center"``) can be given as a mapping:
    ``logtap.tags({"cost:center": "42"}, env="prod")``. Works on ``def`` and ``async def``
    functions as a decorator (tags apply per call) and as ``async with``.
    """

    __slots__ = ("_layer", "_tokens")

    def __init__(self, mapping: Mapping[str, str] | None = None, /, **kv: str) -> None:
        merged: dict[Any, Any] = dict(mapping) if mapping is not None else {}
        merged.update(kv)
        self._layer = _make_layer(merged)
        self._tokens: list[Token[Stack]] = []

    @property
    def layer(self) -> dict[str, str]:
        """A copy of the tags this block adds."""
        return dict(self._layer)

    def __enter__(self) -> tags:
        if _strict_checks is not None:
            for check in _strict_checks():
                check(self._layer)
        self._tokens.append(_STACK.set((*_STACK.get(), self._layer)))
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        _STACK.reset(self._tokens.pop())

    async def __aenter__(self) -> tags:
        return self.__enter__()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __call__(self, func: F) -> F:
        import inspect  # only decorators need it; keeps `logtap.tags` cheap to import

        layer = self._layer
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with _Scope(layer):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _Scope(layer):
                return func(*args, **kwargs)

        return cast(F, wrapper)

    def __repr__(self) -> str:
        return f"logtap.tags(<{len(self._layer)} tags>)"


class _Scope(tags):
    """A fresh scope per decorated call, so one decorated function is safe in any thread."""

    __slots__ = ()

    def __init__(self, layer: dict[str, str]) -> None:  # already checked and converted
        self._layer = layer
        self._tokens = []
