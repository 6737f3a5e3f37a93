"""SDP session descriptions (RFC 8866): the model, parsing and serialization.

The model keeps what the offer/answer code and applications read (origin,
connection, media lines, attributes) in typed fields, and everything else
line-for-line, so a description serializes back to what was parsed, modulo
line endings (always CRLF on output) and trailing whitespace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rtpcore.errors import ParseError

__all__ = [
    "Origin",
    "Connection",
    "RTPMap",
    "MediaDescription",
    "SessionDescription",
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
]

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")

# RFC 8866 section 9: a line is <type>=<value>, the type one lower-case letter.
_TOKEN_RE = re.compile(r"[A-Za-z0-9!#$%&'*+\-.^_`{|}~]+")
_MEDIA_RE = re.compile(r"(\S+) ([0-9]+)(?:/([0-9]+))? (\S+)((?: \S+)*)")
_RTPMAP_RE = re.compile(r"([0-9]+) ([^/\s]+)/([0-9]+)(?:/([0-9]+))?")
# Session-level and media-level line types (section 5). Their order is
# mandated, but equipment on real trunks gets it wrong (a= before t=, c= after
# t=), so only "v= first" is enforced; output always uses the RFC order.
_SESSION_TYPES = "vosiuepcbtrzka"
_MEDIA_TYPES = "micbka"


def _error(message: str, field_name: str | None, offset: int | None) -> ParseError:
    return ParseError(message, offset, "sdp", field_name)


@dataclass
class Origin:
    """The ``o=`` line: who made the session and which version it is."""

    username: str = "-"
    session_id: int = 0
    session_version: int = 0
    nettype: str = "IN"
    addrtype: str = "IP4"
    address: str = "0.0.0.0"

    def __str__(self) -> str:
        return (f"{self.username} {self.session_id} {self.session_version} "
                f"{self.nettype} {self.addrtype} {self.address}")


@dataclass
class Connection:
    """A ``c=`` line. ``address`` may carry ``/ttl`` or ``/count`` for multicast."""

    address: str
    addrtype: str = "IP4"
    nettype: str = "IN"

    def __str__(self) -> str:
        return f"{self.nettype} {self.addrtype} {self.address}"

    @property
    def host(self) -> str:
        """The address without a multicast ``/ttl`` suffix."""
        return self.address.split("/", 1)[0]

    @property
    def is_hold_address(self) -> bool:
        """True for 0.0.0.0, the RFC 2543 way of putting a call on hold."""
        return self.addrtype == "IP4" and self.host == "0.0.0.0"


@dataclass(frozen=True)
class RTPMap:
    """One ``a=rtpmap`` value: payload type, encoding name, clock rate, channels."""

    payload_type: int
    encoding: str
    clock_rate: int
    channels: int = 1

    def __str__(self) -> str:
        text = f"{self.payload_type} {self.encoding}/{self.clock_rate}"
        return text + (f"/{self.channels}" if self.channels != 1 else "")


# RFC 3551 static payload types that we can name without an rtpmap.
STATIC_PAYLOAD_TYPES = {
    0: RTPMap(0, "PCMU", 8000),
    8: RTPMap(8, "PCMA", 8000),
    9: RTPMap(9, "G722", 8000),  # 16 kHz audio, 8000 by RFC 3551's historical error
    13: RTPMap(13, "CN", 8000),
}


@dataclass
class MediaDescription:
    """One ``m=`` section: its media line, connection and attributes.

    ``attributes`` is the ordered list of ``(name, value)`` pairs (``value``
    None for property attributes such as ``a=rtcp-mux``); the helpers below
    read and edit it, so unknown attributes are carried through untouched.
    """

    media: str
    port: int
    proto: str
    formats: list[str]
    port_count: int | None = None
    information: str | None = None
    connection: Connection | None = None
    bandwidths: list[str] = field(default_factory=list)
    key: str | None = None
    attributes: list[tuple[str, str | None]] = field(default_factory=list)

    def attribute(self, name: str) -> str | None:
        """The first value of attribute ``name`` ('' for a property), or None."""
        for key, value in self.attributes:
            if key == name:
                return "" if value is None else value
        return None

    def attribute_values(self, name: str) -> list[str]:
        return [value or "" for key, value in self.attributes if key == name]

    def has_attribute(self, name: str) -> bool:
        return any(key == name for key, _ in self.attributes)

    def set_attribute(self, name: str, value: str | None = None) -> None:
        """Replace every ``a=name`` by one (appended if there was none)."""
        for i, (key, _) in enumerate(self.attributes):
            if key == name:
                self.attributes[i] = (name, value)
                self.attributes[i + 1 :] = [a for a in self.attributes[i + 1 :] if a[0] != name]
                return
        self.attributes.append((name, value))

    def remove_attribute(self, name: str) -> None:
        self.attributes = [a for a in self.attributes if a[0] != name]

    @property
    def direction(self) -> str | None:
        """sendrecv/sendonly/recvonly/inactive if the section says, else None."""
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return None

    @direction.setter
    def direction(self, value: str) -> None:
        if value not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {DIRECTIONS}, got {value!r}")
        self.attributes = [a for a in self.attributes if a[0] not in DIRECTIONS]
        self.attributes.append((value, None))

    def rtpmaps(self) -> dict[int, RTPMap]:
        """Payload type -> RTPMap for every format, static types included."""
        maps: dict[int, RTPMap] = {}
        for value in self.attribute_values("rtpmap"):
            m = _RTPMAP_RE.fullmatch(value.strip())
            if m is not None:
                channels = int(m.group(4)) if m.group(4) else 1
                maps[int(m.group(1))] = RTPMap(int(m.group(1)), m.group(2), int(m.group(3)),
                                               channels)
        for fmt in self.formats:
            if fmt.isdigit() and int(fmt) not in maps and int(fmt) in STATIC_PAYLOAD_TYPES:
                maps[int(fmt)] = STATIC_PAYLOAD_TYPES[int(fmt)]
        return maps

    def fmtp(self, payload_type: int) -> str | None:
        """The ``a=fmtp`` parameters for ``payload_type``, or None."""
        prefix = f"{payload_type} "
        for value in self.attribute_values("fmtp"):
            if value.startswith(prefix):
                return value[len(prefix) :].strip()
        return None

    def _int_attribute(self, name: str) -> int | None:
        value = self.attribute(name)
        if value is None:
            return None
        try:
            return int(float(value))  # ptime may be "20" or "20.0"
        except ValueError:
            return None

    @property
    def ptime(self) -> int | None:
        return self._int_attribute("ptime")

    @property
    def maxptime(self) -> int | None:
        return self._int_attribute("maxptime")

    @property
    def rtcp_mux(self) -> bool:
        return self.has_attribute("rtcp-mux")

    @property
    def rejected(self) -> bool:
        """Port 0: the stream is rejected or removed (RFC 3264 section 6/8.2)."""
        return self.port == 0

    def lines(self) -> list[str]:
        port = str(self.port) if self.port_count is None else f"{self.port}/{self.port_count}"
        out = [f"m={self.media} {port} {self.proto} {' '.join(self.formats)}".rstrip()]
        if self.information is not None:
            out.append(f"i={self.information}")
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        if self.key is not None:
            out.append(f"k={self.key}")
        out.extend(f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes)
        return out


@dataclass
class SessionDescription:
    """A whole SDP body: session-level fields and media sections."""

    origin: Origin = field(default_factory=Origin)
    session_name: str = "-"
    connection: Connection | None = None
    media: list[MediaDescription] = field(default_factory=list)
    attributes: list[tuple[str, str | None]] = field(default_factory=list)
    times: list[str] = field(default_factory=lambda: ["0 0"])
    bandwidths: list[str] = field(default_factory=list)
    # Rarely used fields, kept as text: i= u= e= p= r= z= k=
    extra_lines: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview | str) -> SessionDescription:
        """Parse an SDP body. Raises ``ParseError`` (layer ``"sdp"``).

        Lines may end in CRLF or LF (section 5 asks parsers to accept both).
        """
        if isinstance(data, str):
            text = data
        else:
            try:
                text = bytes(data).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _error("SDP is not UTF-8", None, exc.start) from None
        sdp = cls(origin=Origin(), times=[])
        seen: set[str] = set()
        current: MediaDescription | None = None
        offset = 0
        ascii_only = text.isascii()  # then a line's length in bytes is its len()
        for raw in text.split("\n"):
            line_offset = offset
            offset += (len(raw) if ascii_only else len(raw.encode("utf-8"))) + 1
            line = raw[:-1] if raw.endswith("\r") else raw
            if not line.strip():
                continue
            # <type>=<value> with a one-letter, lower-case type (RFC 8866 section 5)
            if len(line) < 2 or line[1] != "=" or not "a" <= line[0] <= "z":
                raise _error(f"not a <type>=<value> line: {line[:40]!r}", None, line_offset)
            kind, value = line[0], line[2:]
            name = kind + "="
            if kind == "m":
                current = _parse_media_line(value, line_offset)
                sdp.media.append(current)
                continue
            if not seen and kind != "v":
                raise _error("an SDP body starts with v=", "v=", line_offset)
            if current is not None:
                if kind not in _MEDIA_TYPES:
                    raise _error(f"{name} line not allowed in a media section", name, line_offset)
                _add_media_field(current, kind, value, line_offset)
                continue
            if kind not in _SESSION_TYPES:
                raise _error(f"unknown line type {name}", name, line_offset)
            if kind in "vosc" and kind in seen:
                raise _error(f"more than one {name} line", name, line_offset)
            seen.add(kind)
            _add_session_field(sdp, kind, value, line_offset)
        for required in "vost":
            if required not in seen:
                raise _error(f"missing {required}= line", required + "=", None)
        return sdp

    def lines(self) -> list[str]:
        out = ["v=0", f"o={self.origin}", f"s={self.session_name}"]
        extra = {kind: [line for line in self.extra_lines if line[0] == kind] for kind in "iuepzkr"}
        out += extra["i"] + extra["u"] + extra["e"] + extra["p"]
        if self.connection is not None:
            out.append(f"c={self.connection}")
        out.extend(f"b={b}" for b in self.bandwidths)
        out.extend(f"t={t}" for t in self.times)
        out += extra["r"] + extra["z"] + extra["k"]
        out.extend(f"a={k}" if v is None else f"a={k}:{v}" for k, v in self.attributes)
        for media in self.media:
            out.extend(media.lines())
        return out

    def encode(self) -> bytes:
        """The SDP body, CRLF line endings, UTF-8."""
        return ("\r\n".join(self.lines()) + "\r\n").encode("utf-8")

    def __str__(self) -> str:
        return self.encode().decode("utf-8")

    def connection_for(self, media: MediaDescription) -> Connection | None:
        """The connection that applies to ``media`` (its own, else the session's)."""
        return media.connection if media.connection is not None else self.connection

    def direction_for(self, media: MediaDescription) -> str:
        """The effective direction of ``media`` (media, session, then sendrecv)."""
        if media.direction is not None:
            return media.direction
        for key, _ in self.attributes:
            if key in DIRECTIONS:
                return key
        return "sendrecv"


def _parse_media_line(value: str, offset: int) -> MediaDescription:
    m = _MEDIA_RE.fullmatch(value)
    if m is None:
        raise _error(f"malformed m= line: {value[:60]!r}", "m=", offset)
    port = int(m.group(2))
    if port > 65535:
        raise _error("m= port out of range", "m=", offset)
    count = int(m.group(3)) if m.group(3) else None
    return MediaDescription(m.group(1), port, m.group(4), m.group(5).split(), count)


def _parse_connection(value: str, offset: int) -> Connection:
    parts = value.split()
    if len(parts) != 3:
        raise _error(f"malformed c= line: {value[:60]!r}", "c=", offset)
    return Connection(parts[2], parts[1], parts[0])


def _parse_attribute(value: str, offset: int) -> tuple[str, str | None]:
    name, colon, rest = value.partition(":")
    if _TOKEN_RE.fullmatch(name) is None:
        raise _error(f"malformed attribute name {name[:40]!r}", "a=", offset)
    return (name, rest if colon else None)


def _add_session_field(sdp: SessionDescription, kind: str, value: str, offset: int) -> None:
    if kind == "v":
        if value.strip() != "0":
            raise _error("unsupported SDP version", "v=", offset)
    elif kind == "o":
        parts = value.split()
        if len(parts) != 6 or not parts[1].isdigit() or not parts[2].isdigit():
            raise _error(f"malformed o= line: {value[:60]!r}", "o=", offset)
        sdp.origin = Origin(parts[0], int(parts[1]), int(parts[2]), parts[3], parts[4], parts[5])
    elif kind == "s":
        sdp.session_name = value
    elif kind == "c":
        sdp.connection = _parse_connection(value, offset)
    elif kind == "b":
        sdp.bandwidths.append(value)
    elif kind == "t":
        parts = value.split()
        if len(parts) != 2 or not all(p.isdigit() for p in parts):
            raise _error(f"malformed t= line: {value[:60]!r}", "t=", offset)
        sdp.times.append(value)
    elif kind == "a":
        sdp.attributes.append(_parse_attribute(value, offset))
    else:
        sdp.extra_lines.append(f"{kind}={value}")


def _add_media_field(media: MediaDescription, kind: str, value: str, offset: int) -> None:
    if kind == "c":
        media.connection = _parse_connection(value, offset)
    elif kind == "b":
        media.bandwidths.append(value)
    elif kind == "a":
        media.attributes.append(_parse_attribute(value, offset))
    elif kind == "i":
        media.information = value
    elif kind == "k":
        media.key = value
