"""An aiobotocore-compatible response body over bytes logtap already read (InvokeModel, async).

aiobotocore 3 has ``aiobotocore.response.AioStreamingBodyBase`` (a ``botocore`` ``StreamingBody``
with the async API); the body here subclasses it there, so ``isinstance`` checks keep working.
aiobotocore 2 (the one aioboto3 pins) has no such base: its ``StreamingBody`` wraps the aiohttp
response. There the body is built on :class:`AsyncBodyAPI`, the same async surface written out
(``read``, ``readinto``, ``async for``, ``iter_chunks``, ``iter_lines``, ``readlines``, ``tell``,
``async with``), so the caller reads it exactly as it would read aiobotocore's own.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any


class AsyncBodyAPI:
    """aiobotocore's async body API over a raw byte stream; subclasses implement ``read``."""

    _DEFAULT_CHUNK_SIZE = 1024

    def __init__(self, raw_stream: Any, content_length: int) -> None:
        self._raw_stream = raw_stream
        self._content_length = content_length
        self._amount_read = 0

    @property
    def raw_stream(self) -> Any:
        return self._raw_stream

    async def read(self, amt: int | None = None) -> bytes:
        raise NotImplementedError

    async def aclose(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Any:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def readlines(self) -> list[bytes]:
        return [line async for line in self.iter_lines()]

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.iter_chunks(self._DEFAULT_CHUNK_SIZE)

    async def __anext__(self) -> bytes:
        chunk = await self.read(self._DEFAULT_CHUNK_SIZE)
        if chunk:
            return chunk
        raise StopAsyncIteration

    anext = __anext__

    async def iter_lines(self, chunk_size: int = _DEFAULT_CHUNK_SIZE, keepends: bool = False) -> AsyncIterator[bytes]:
        pending = b""
        async for chunk in self.iter_chunks(chunk_size):
            lines = (pending + chunk).splitlines(True)
            for line in lines[:-1]:
                yield line.splitlines(keepends)[0]
            pending = lines[-1]
        if pending:
            yield pending.splitlines(keepends)[0]

    async def iter_chunks(self, chunk_size: int = _DEFAULT_CHUNK_SIZE) -> AsyncIterator[bytes]:
        while True:
            chunk = await self.read(chunk_size)
            if chunk == b"":
                break
            yield chunk

    def tell(self) -> int:
        return self._amount_read


def _body_base() -> Any:
    try:
        from aiobotocore.response import AioStreamingBodyBase
    except ImportError:  # aiobotocore < 3
        return AsyncBodyAPI
    return AioStreamingBodyBase


_Base: Any = _body_base()


class BufferedAioBody(_Base):  # type: ignore[misc]
    """Reads like aiobotocore's ``StreamingBody`` (``await body.read()``, ``async for``...)."""

    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data), len(data))

    def readable(self) -> bool:
        return self._raw_stream.tell() < self._content_length  # type: ignore[no-any-return]

    async def read(self, amt: int | None = None) -> bytes:
        chunk: bytes = self._raw_stream.read(amt if amt is not None else -1)
        self._amount_read += len(chunk)
        return chunk

    async def readinto(self, b: Any) -> int:
        chunk = await self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        self._raw_stream.close()

    async def aclose(self) -> None:
        self.close()


class FailedAioBody(BufferedAioBody):
    """A body whose read re-raises the error logtap met while reading the real one."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(b"")
        self._error = error

    async def read(self, amt: int | None = None) -> bytes:
        raise self._error
