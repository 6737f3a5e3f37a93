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
    "SRTPError",
    "AuthenticationError",
    "ReplayError",
    "SIPError",
    "SIPParseError",
    "SIPLimitError",
    "ConfigError",
    "CallFailed",
    "CallRateExceeded",
    "MediaError",
    "StreamClosedError",
    "QueueFullError",
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


class SRTPError(RtpcoreError):
    """An SRTP or SRTCP packet that a session refuses, for a reason other than
    its format (which raises ``ParseError``).

    Raised as such when a master key has used up its index space (2^48 SRTP or
    2^31 SRTCP packets for one SSRC) and the session must be re-keyed; the
    subclasses below name the common cases.
    """


class AuthenticationError(SRTPError):
    """An SRTP/SRTCP packet whose authentication tag does not verify: it was
    protected with a different key, altered on the way, or carries an MKI that
    names no key of the session. The session's state (replay window, roll-over
    counter) is unchanged.
    """


class ReplayError(SRTPError):
    """An SRTP/SRTCP packet whose index the replay window rejects.

    ``index`` is the packet index (the 48-bit SRTP index ROC * 65536 + SEQ, or
    the 31-bit SRTCP index) and ``reason`` is ``"duplicate"`` (received before,
    inside the window) or ``"too old"`` (behind the window, so it cannot be
    told apart from a replay).
    """

    def __init__(self, message: str, index: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.index = index
        self.reason = reason

    def __reduce__(self) -> tuple[type[ReplayError], tuple[str, int | None, str | None]]:
        return (type(self), (self.message, self.index, self.reason))


class SIPError(RtpcoreError):
    """A SIP request that must be answered with an error response.

    ``status_code`` and ``reason`` are the status line to answer with (a user
    agent or proxy sends them back when the offending message was a request;
    a bad response is dropped).
    """

    status_code: int = 500
    reason: str = "Server Internal Error"

    def __init__(
        self, message: str, status_code: int | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        if status_code is not None:
            self.status_code = status_code
        if reason is not None:
            self.reason = reason

    def __reduce__(self) -> tuple[type[SIPError], tuple[str, int, str]]:
        return (type(self), (self.message, self.status_code, self.reason))


class SIPParseError(ParseError, SIPError):
    """A SIP message that does not follow the RFC 3261 grammar.

    Answered with 400 (Bad Request) unless a more precise status applies, such
    as 505 (Version Not Supported). ``layer`` is ``"sip"``; ``field`` names the
    header field (or ``"start-line"``, ``"body"``) and ``offset`` is the byte
    offset of the line where the problem was found.
    """

    status_code = 400
    reason = "Bad Request"

    def __init__(
        self,
        message: str,
        offset: int | None = None,
        field: str | None = None,
        status_code: int | None = None,
        reason: str | None = None,
    ) -> None:
        ParseError.__init__(self, message, offset, "sip", field)
        if status_code is not None:
            self.status_code = status_code
        if reason is not None:
            self.reason = reason

    def __reduce__(  # type: ignore[override]
        self,
    ) -> tuple[type[SIPParseError], tuple[str, int | None, str | None, int, str]]:
        return (type(self), (self.message, self.offset, self.field, self.status_code, self.reason))


class SIPLimitError(SIPParseError):
    """A SIP message larger than the configured limits allow.

    Raised before the excess is buffered, so a hostile peer cannot make the
    parser grow without bound. The status says which limit: 413 (Request
    Entity Too Large) for a body, 513 (Message Too Large) for the message or
    its header section, 400 for too many header fields or an over-long line.
    """


class AudioopError(RtpcoreError):
    """A bad argument to :mod:`rtpcore.audioop` (sample width not 1 to 4, or
    a fragment that is not a whole number of samples); exported there as
    ``rtpcore.audioop.error`` with the messages of the stdlib ``audioop``."""


class ConfigError(RtpcoreError, ValueError):
    """A gateway configuration value that cannot work, found at start-up.

    ``key`` names the setting as the TOML file spells it (``"sip.udp_port"``,
    ``"trunks.carrier.registrar"``) and ``source`` says where the value came
    from (the file's path, or the environment variable that overrode it).
    """

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        where = f" (from {source})" if source else ""
        super().__init__(f"{key}: {message}{where}")
        self.key = key
        self.message = message
        self.source = source

    def __reduce__(self) -> tuple[type[ConfigError], tuple[str, str, str | None]]:
        return (type(self), (self.key, self.message, self.source))


class CallFailed(RtpcoreError):
    """A call that did not get answered: ``status_code`` and ``reason`` are
    the SIP final response (486 busy, 408/480 no answer, 503 ...);
    ``call_sid`` the gateway's SID of the failed call, when there was one."""

    def __init__(self, status_code: int, reason: str, call_sid: str | None = None) -> None:
        super().__init__(f"{status_code} {reason}")
        self.status_code = status_code
        self.reason = reason
        self.call_sid = call_sid

    def __reduce__(self) -> tuple[type[CallFailed], tuple[int, str, str | None]]:
        return (type(self), (self.status_code, self.reason, self.call_sid))


class CallRateExceeded(RtpcoreError):
    """A call out through ``trunk`` refused before anything was sent: the
    trunk's limit of ``cps`` new calls per second is used up. The next call
    is allowed in ``retry_after`` seconds."""

    def __init__(self, trunk: str, cps: float, retry_after: float) -> None:
        super().__init__(f"trunk {trunk!r}: over its limit of {cps:g} calls per second; "
                         f"the next call is allowed in {retry_after:.3f} s")
        self.trunk = trunk
        self.cps = cps
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[type[CallRateExceeded], tuple[str, float, float]]:
        return (type(self), (self.trunk, self.cps, self.retry_after))


class MediaError(RtpcoreError):
    """The media engine refused a request: no free port left in its range,
    the engine closed, a worker that did not answer."""


class StreamClosedError(MediaError):
    """Writing to, or waiting on, a media stream that has closed."""


class QueueFullError(MediaError):
    """A media stream's outbound queue holds its maximum already
    (``write_nowait``); ``await stream.write(...)`` waits instead."""
