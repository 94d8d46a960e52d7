"""An aiobotocore-compatible response body over bytes logtap already read (InvokeModel, async)."""

from __future__ import annotations

import io
from typing import Any

from aiobotocore.response import AioStreamingBodyBase


class BufferedAioBody(AioStreamingBodyBase):  # type: ignore[misc]
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
