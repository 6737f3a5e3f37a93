"""The one exception tree of rtpcore, raised from Rust and Python alike.

``RtpcoreError`` is the root. Parsers raise ``ParseError``, which is also a
``ValueError`` so that code written against the standard library's habits
keeps working, and which says where the input went wrong: the byte ``offset``,
the protocol ``layer`` and the ``field``.
"""

from __future__ import annotations

__all__ = [
    "RtpcoreError",
    "ParseError",
]


class RtpcoreError(Exception):
    """Base class of every error rtpcore raises on purpose."""


class ParseError(RtpcoreError, ValueError):
    """Bytes or text that do not follow the wire format they claim to be.

    ``offset`` is the byte offset of the bad field in the buffer that was
    parsed, ``layer`` the protocol layer (``"rtp"``, ``"rtcp"``, ``"sip"`` ...)
    and ``field`` the name of the bad field, as its RFC names it.
    """

    def __init__(
        self,
        message: str,
        offset: int | None = None,
        layer: str | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.layer = layer
        self.field = field

    def __reduce__(self) -> tuple[type[ParseError], tuple[str, int | None, str | None, str | None]]:
        return (type(self), (self.message, self.offset, self.layer, self.field))


class AudioopError(RtpcoreError):
    """A bad argument to :mod:`rtpcore.audioop` (sample width not 1 to 4, or
    a fragment that is not a whole number of samples); exported there as
    ``rtpcore.audioop.error`` with the messages of the stdlib ``audioop``."""
