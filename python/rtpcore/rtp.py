"""RTP packets (RFC 3550) with RFC 8285 header extensions, batch parsing,
sequence-number and timestamp unwrapping, and RTP/RTCP demultiplexing.

``RTPPacket.parse(buf)`` accepts any buffer (``bytes``, ``bytearray``,
``memoryview``, a numpy ``uint8`` array) and returns an immutable packet:

>>> pkt = RTPPacket(payload_type=0, sequence_number=1, timestamp=160, ssrc=0x1234,
...                 extensions={1: b"\\x30"}, payload=b"\\xff" * 160)
>>> RTPPacket.parse(bytes(pkt)) == pkt
True
>>> pkt.extension(1)
b'0'

A packet *is* its wire bytes plus the decoded header: ``bytes(pkt)`` and
``pkt.serialize()`` (aiortc's name, and the cheaper call) cost no copy, and a
packet parsed from ``bytes`` shares that object. ``padding`` is
the number of padding bytes (count byte included), 0 when the P bit is clear.
``extensions`` maps the local ids of RFC 8285 elements (one-byte or two-byte
form) to their values; other extension profiles are exposed raw through
``extension_profile`` and ``extension_data``. Bad packets raise
:class:`rtpcore.errors.ParseError` naming the layer, field and byte offset.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal, overload

from rtpcore._core import (
    RTPPacket,
    SequenceUnwrapper,
    TimestampUnwrapper,
    classify_datagram,
    parse_rtp_batch,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = [
    "RTPPacket",
    "SequenceUnwrapper",
    "TimestampUnwrapper",
    "classify",
    "parse_batch",
]


@overload
def parse_batch(datagrams: Iterable[Buffer], *, strict: Literal[True] = ...) -> list[RTPPacket]: ...
@overload
def parse_batch(datagrams: Iterable[Buffer], *, strict: bool) -> list[RTPPacket | None]: ...
def parse_batch(datagrams: Iterable[Buffer], *, strict: bool = True) -> list[RTPPacket] | list[RTPPacket | None]:
    """Parses many datagrams in one call, in order.

    With ``strict`` (the default) the first datagram that is not valid RTP
    raises :class:`~rtpcore.errors.ParseError`, whose message starts with its
    index; with ``strict=False`` it becomes ``None`` in the result instead.
    """
    return parse_rtp_batch(datagrams, strict=strict)


def classify(datagram: Buffer) -> str:
    """What a datagram received on a shared port is, from its first bytes.

    Returns ``"rtp"`` or ``"rtcp"`` (RFC 5761 section 4: packet types 192..223
    are RTCP), or for WebRTC-style ports ``"stun"``, ``"dtls"``, ``"zrtp"``,
    ``"turn-channel"`` (RFC 7983), else ``"unknown"``. It does not validate
    the packet; parse it to do that.
    """
    return classify_datagram(datagram)
