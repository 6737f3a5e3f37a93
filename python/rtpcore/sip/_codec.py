"""SIP message codec: parse and serialize RFC 3261 messages.

This one source is the codec twice over: imported as it is, it is the pure
Python codec; compiled by Cython (as ``rtpcore.sip._codec_c``, with the types
declared in ``src/rtpcore/sip/_codec_c.pxd``) it is the fast one. Keep it
Cython-friendly: plain classes with ``__slots__``, helpers that take and
return indices, no metaclass tricks, no closures in hot paths. Import the
codec through ``rtpcore.sip``, which picks the build.

Grammar references are to RFC 3261 section 25 unless said otherwise.

Layers:

* lexical helpers (tokens, quoted strings, parameter lists, comma lists);
* value types for the structured headers (``URI``, ``Address``, ``Via``,
  ``CSeq``) that parse from and serialize to header text;
* ``Headers``, the ordered, case-insensitive header list, and the messages
  ``Request`` and ``Response``;
* framing: ``parse_message`` for a datagram (section 18.3: Content-Length
  optional, trailing octets dropped) and ``StreamParser`` for TCP/TLS
  (Content-Length required, messages back to back), both under ``Limits``.
"""

from __future__ import annotations

import re
from typing import Any

from rtpcore.errors import SIPError, SIPLimitError, SIPParseError

__all__ = [
    "URI",
    "Address",
    "Via",
    "CSeq",
    "Headers",
    "Message",
    "Request",
    "Response",
    "BodyPart",
    "Limits",
    "KeepAlive",
    "KEEPALIVE",
    "StreamParser",
    "parse_message",
    "parse_uri",
    "parse_address",
    "parse_via",
    "parse_media_type",
    "parse_multipart",
    "encode_multipart",
    "session_description",
    "canonical_name",
    "split_header_list",
    "REASON_PHRASES",
]

# --- lexical level -----------------------------------------------------------

_TOKEN = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TOKEN_RE = re.compile(_TOKEN)
_WS = " \t"
_HEXPAIR = r"%[0-9A-Fa-f]{2}"
_HOST = r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-.]+)"

# A header field parameter: SEMI generic-param (gen-value is token, host or
# quoted-string).
_PARAM_RE = re.compile(
    r"[ \t]*;[ \t]*(" + _TOKEN + r")(?:[ \t]*=[ \t]*(\"(?:[^\"\\]|\\.)*\"|\[[0-9A-Fa-f:.]+\]|"
    r"[0-9A-Fa-f]*:[0-9A-Fa-f:.]+|" + _TOKEN + r"))?[ \t]*",
    re.DOTALL,
)
# Control characters are only legal escaped in a quoted-pair; CR and LF only
# as the CRLF that ends a line.
_BAD_CHAR_RE = re.compile(r"(?<!\\)[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]|\r(?!\n)|(?<!\r)\n")
# Every byte but the controls (TAB aside): deleting these from a header
# section leaves only its control bytes. If what is left is just the CRLFs
# that end its lines, the section is clean, and the costly scan above (whose
# lookbehinds make it some 40 us per INVITE) is only needed to place an error.
_PLAIN_BYTES = bytes([b for b in range(256) if b == 9 or 32 <= b < 127 or b > 127])

_SIP_URI_RE = re.compile(
    r"((?i:sips?)):"
    r"(?:((?:[A-Za-z0-9\-_.!~*'()&=+$,;?/]|" + _HEXPAIR + r")+)"  # user
    r"(?::((?:[A-Za-z0-9\-_.!~*'()&=+$,]|" + _HEXPAIR + r")*))?@)?"  # password
    r"(" + _HOST + r")"
    r"(?::([0-9]{1,5}))?"
    r"((?:;(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|" + _HEXPAIR + r")+"
    r"(?:=(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|" + _HEXPAIR + r")+)?)*)"
    r"(?:\?((?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|" + _HEXPAIR + r")+="
    r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|" + _HEXPAIR + r")*"
    r"(?:&(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|" + _HEXPAIR + r")+="
    r"(?:[A-Za-z0-9\-_.!~*'()\[\]/?:+$]|" + _HEXPAIR + r")*)*))?"
)
# RFC 3966 telephone-subscriber, kept loose on the digits' visual separators.
_TEL_URI_RE = re.compile(
    r"((?i:tel)):(\+?[0-9A-Fa-f*#\-.()]+)"
    r"((?:;[A-Za-z0-9\-]+(?:=(?:[A-Za-z0-9\-_.!~*'()\[\]/:&+$]|" + _HEXPAIR + r")+)?)*)"
)
# Any other absoluteURI: scheme ":" then printable, non-space characters.
_ABSOLUTE_URI_RE = re.compile(r"([A-Za-z][A-Za-z0-9+\-.]*):([\x21-\x7e]+)")

_VIA_RE = re.compile(
    r"(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")"
    r"[ \t]+(" + _HOST + r")(?:[ \t]*:[ \t]*([0-9]{1,5}))?"
)
_CSEQ_RE = re.compile(r"([0-9]+)[ \t]+(" + _TOKEN + r")")
_DIGITS_RE = re.compile(r"[0-9]+")
_VERSION_RE = re.compile(r"(?i:SIP)/([0-9]+)\.([0-9]+)")
_DATE_RE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} "
    r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT"
)
_MEDIA_TYPE_RE = re.compile(r"(" + _TOKEN + r")[ \t]*/[ \t]*(" + _TOKEN + r")")

# Compact forms (RFC 3261 section 7.3.3 and the extensions that define one).
_COMPACT_FORMS = {
    "a": "Accept-Contact",
    "b": "Referred-By",
    "c": "Content-Type",
    "d": "Request-Disposition",
    "e": "Content-Encoding",
    "f": "From",
    "i": "Call-ID",
    "j": "Reject-Contact",
    "k": "Supported",
    "l": "Content-Length",
    "m": "Contact",
    "n": "Identity-Info",
    "o": "Event",
    "r": "Refer-To",
    "s": "Subject",
    "t": "To",
    "u": "Allow-Events",
    "v": "Via",
    "x": "Session-Expires",
    "y": "Identity",
}
_COMPACT_OF = {
    "call-id": "i",
    "contact": "m",
    "content-encoding": "e",
    "content-length": "l",
    "content-type": "c",
    "from": "f",
    "subject": "s",
    "supported": "k",
    "to": "t",
    "via": "v",
}

_KNOWN_NAMES = (
    "Accept", "Accept-Contact", "Accept-Encoding", "Accept-Language", "Alert-Info", "Allow",
    "Allow-Events", "Authentication-Info", "Authorization", "Call-ID", "Call-Info", "Contact",
    "Content-Disposition", "Content-Encoding", "Content-Language", "Content-Length",
    "Content-Type", "CSeq", "Date", "Error-Info", "Event", "Expires", "From", "Identity",
    "Identity-Info", "In-Reply-To", "Max-Forwards", "Min-Expires", "Min-SE", "MIME-Version",
    "Organization", "P-Asserted-Identity", "P-Preferred-Identity", "Path", "Priority",
    "Privacy", "Proxy-Authenticate", "Proxy-Authorization", "Proxy-Require", "RAck", "Reason",
    "Record-Route", "Refer-To", "Referred-By", "Reject-Contact", "Replaces", "Reply-To",
    "Request-Disposition", "Require", "Retry-After", "Route", "RSeq", "Server",
    "Service-Route", "Session-Expires", "SIP-ETag", "SIP-If-Match", "Subject",
    "Subscription-State", "Supported", "Timestamp", "To", "Unsupported", "User-Agent", "Via",
    "Warning", "WWW-Authenticate",
)
_CANONICAL = {name.lower(): name for name in _KNOWN_NAMES}
for _short, _long in _COMPACT_FORMS.items():
    _CANONICAL[_short] = _long
# lower-case spelling -> lookup key of its canonical name ("v" -> "via")
_CANONICAL_KEY = {spelling: name.lower() for spelling, name in _CANONICAL.items()}
# Spelling as written -> (canonical name, lookup key) for the spellings that
# messages and callers actually use: canonical, lower-case, upper-case and
# compact. One dict hit per header field spares a lower(), two more lookups
# and (in the parser) the token regex, a known name being a token; any other
# spelling takes the general path in _name_and_key.
_SPELLINGS: dict[str, tuple[str, str]] = {}
for _spelling, _name in _CANONICAL.items():
    for _variant in (_spelling, _spelling.upper(), _name):
        _SPELLINGS[_variant] = (_name, _CANONICAL_KEY[_spelling])

# Header fields whose values are comma-separated lists (the "#" rule). Others,
# unknown ones included, keep commas as part of one value: the challenge and
# credential headers and Date contain commas that separate nothing.
_LIST_HEADERS = frozenset((
    "accept", "accept-contact", "accept-encoding", "accept-language", "alert-info", "allow",
    "allow-events", "call-info", "contact", "content-encoding", "content-language",
    "error-info", "in-reply-to", "p-asserted-identity", "p-preferred-identity", "path",
    "proxy-require", "reason", "record-route", "reject-contact", "require", "route",
    "service-route", "supported", "unsupported", "via", "warning",
))
# Header fields that may appear once; a second copy is how smuggling starts.
_SINGLE_HEADERS = (
    "call-id", "content-length", "content-type", "cseq", "from", "max-forwards", "to",
)

REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued",
    183: "Session Progress", 199: "Early Dialog Terminated", 200: "OK", 202: "Accepted",
    204: "No Notification", 300: "Multiple Choices", 301: "Moved Permanently",
    302: "Moved Temporarily", 305: "Use Proxy", 380: "Alternative Service",
    400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
    404: "Not Found", 405: "Method Not Allowed", 406: "Not Acceptable",
    407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large",
    414: "Request-URI Too Long", 415: "Unsupported Media Type",
    416: "Unsupported URI Scheme", 420: "Bad Extension", 421: "Extension Required",
    422: "Session Interval Too Small", 423: "Interval Too Brief",
    428: "Use Identity Header", 429: "Provide Referrer Identity",
    480: "Temporarily Unavailable", 481: "Call/Transaction Does Not Exist",
    482: "Loop Detected", 483: "Too Many Hops", 484: "Address Incomplete", 485: "Ambiguous",
    486: "Busy Here", 487: "Request Terminated", 488: "Not Acceptable Here",
    489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway",
    503: "Service Unavailable", 504: "Server Time-out", 505: "Version Not Supported",
    513: "Message Too Large", 580: "Precondition Failure", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}

_MAX_CSEQ = 2**31 - 1  # RFC 3261 section 8.1.1.5: "MUST be less than 2**31"
_MAX_DELTA_SECONDS = 2**32 - 1  # section 20.19 / 25: larger is read as this


def canonical_name(name: str) -> str:
    """Return the conventional spelling of a header field name.

    Compact forms are expanded (``"v"`` -> ``"Via"``); known names get their
    RFC capitalisation; unknown names are returned unchanged.
    """
    return _CANONICAL.get(name.lower(), name)


def _name_and_key(name: str) -> tuple[str, str]:
    """``(canonical name, lower-case lookup key)`` of a header field name."""
    entry = _SPELLINGS.get(name)
    if entry is not None:
        return entry
    key = name.lower()
    canonical = _CANONICAL.get(key)
    if canonical is None:
        return (name, key)
    return (canonical, _CANONICAL_KEY[key])


def _error(message: str, field: str | None, offset: int | None = None) -> SIPParseError:
    return SIPParseError(message, offset, field)


def _skip_ws(text: str, pos: int) -> int:
    end = len(text)
    while pos < end and (text[pos] == " " or text[pos] == "\t"):
        pos += 1
    return pos


def _quoted_string_end(text: str, pos: int, field: str | None) -> int:
    """Index just past the quoted-string whose opening quote is at ``pos``."""
    # find() jumps from quote to quote; a backslash before the quote found
    # escapes the character after it, so the search resumes past that pair.
    i = pos + 1
    while True:
        close = text.find('"', i)
        if close < 0:
            raise _error("unterminated quoted string", field)
        backslash = text.find("\\", i, close)
        if backslash < 0:
            return close + 1
        i = backslash + 2


def _unquote(text: str) -> str:
    """The content of a quoted-string (quotes stripped, quoted-pairs resolved)."""
    inner = text[1:-1]
    if "\\" not in inner:
        return inner
    out = []
    i = 0
    end = len(inner)
    while i < end:
        c = inner[i]
        if c == "\\" and i + 1 < end:
            i += 1
            c = inner[i]
        out.append(c)
        i += 1
    return "".join(out)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_header_list(value: str, field: str | None = None) -> list[str]:
    """Split a comma-separated header value, respecting quotes and ``<...>``.

    Each element is stripped of surrounding whitespace; an empty element
    (``a,,b``) is a syntax error, as the ``#`` rule does not allow one in SIP.
    """
    if "," not in value:
        return [value.strip()]
    parts = []
    start = 0
    i = 0
    end = len(value)
    in_angle = False
    while i < end:
        c = value[i]
        if c == '"':
            i = _quoted_string_end(value, i, field)
            continue
        if c == "<":
            in_angle = True
        elif c == ">":
            in_angle = False
        elif c == "," and not in_angle:
            parts.append(value[start:i].strip())
            start = i + 1
        i += 1
    parts.append(value[start:].strip())
    for part in parts:
        if not part:
            raise _error("empty element in a comma-separated list", field)
    return parts


def _parse_params(text: str, pos: int, field: str | None) -> dict[str, str | None]:
    """Parse ``*( SEMI generic-param )`` from ``pos`` to the end of ``text``.

    Names are lower-cased (parameter names are case-insensitive); values are
    kept as written, quotes included, so that serialization is faithful.
    """
    params: dict[str, str | None] = {}
    end = len(text)
    pos = _skip_ws(text, pos)
    while pos < end:
        m = _PARAM_RE.match(text, pos)
        if m is None:
            raise _error("malformed parameter", field)
        params[m.group(1).lower()] = m.group(2)
        pos = m.end()
    return params


def _format_params(params: dict[str, str | None]) -> str:
    out = []
    for name, value in params.items():
        out.append(";" + name if value is None else ";" + name + "=" + value)
    return "".join(out)


def _parse_delta_seconds(value: str, field: str) -> int:
    if _DIGITS_RE.fullmatch(value) is None:
        raise _error("expected delta-seconds", field)
    number = int(value)
    return _MAX_DELTA_SECONDS if number > _MAX_DELTA_SECONDS else number


# --- URIs --------------------------------------------------------------------


class URI:
    """A SIP, SIPS or tel URI, or any other absoluteURI kept opaque.

    ``user``, ``password``, parameter values and ``headers`` are kept in their
    escaped form, exactly as written. For tel URIs the number is ``user`` and
    ``host`` is empty; for other schemes everything after the colon is
    ``opaque``. Parameter names are lower-cased; a parameter without a value
    maps to ``None`` (``;lr``).
    """

    __slots__ = ("scheme", "user", "password", "host", "port", "params", "headers", "opaque")

    def __init__(
        self,
        scheme: str = "sip",
        user: str | None = None,
        host: str = "",
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        headers: str | None = None,
        password: str | None = None,
        opaque: str | None = None,
    ) -> None:
        self.scheme = scheme.lower()
        self.user = user
        self.password = password
        self.host = host
        self.port = port
        self.params = {} if params is None else params
        self.headers = headers
        self.opaque = opaque

    @property
    def transport(self) -> str | None:
        """The ``transport`` parameter, lower-cased, or None."""
        value = self.params.get("transport")
        return None if value is None else value.lower()

    @property
    def hostport(self) -> str:
        """``host`` or ``host:port`` as written in a Via or URI."""
        return self.host if self.port is None else self.host + ":" + str(self.port)

    def __str__(self) -> str:
        if self.opaque is not None:
            return self.scheme + ":" + self.opaque
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts.append(":" + self.password)
            if self.scheme != "tel":
                parts.append("@")
        if self.scheme != "tel":
            parts.append(self.hostport)
        parts.append(_format_params(self.params))
        if self.headers is not None:
            parts.append("?" + self.headers)
        return "".join(parts)

    def __repr__(self) -> str:
        return "URI(" + repr(str(self)) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, URI):
            return NotImplemented
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse_uri(text: str, field: str | None = None) -> URI:
    """Parse a Request-URI or a URI from a header (SIP, SIPS, tel, other).

    Raises ``SIPParseError`` (400) if ``text`` is not a URI; embedded
    whitespace and angle brackets are errors, not something to strip.
    """
    return _parse_uri(text, field)


def _parse_uri(text: str, field: str | None) -> URI:
    # The body of parse_uri: a C function in the compiled build, so the
    # parser's own calls skip the Python call protocol.
    m = _SIP_URI_RE.fullmatch(text)
    if m is not None:
        scheme, user, password, host, port_text, params_text, headers = m.groups()
        port = None
        if port_text is not None:
            port = int(port_text)
            if port > 65535:
                raise _error("port out of range", field)
        params: dict[str, str | None] = {}
        if params_text:
            for item in params_text[1:].split(";"):
                name, eq, value = item.partition("=")
                params[name.lower()] = value if eq else None
        return URI(scheme, user, host, port, params, headers, password)
    m = _TEL_URI_RE.fullmatch(text)
    if m is not None:
        tel_params: dict[str, str | None] = {}
        params_text = m.group(3)
        if params_text:
            for item in params_text[1:].split(";"):
                name, eq, value = item.partition("=")
                tel_params[name.lower()] = value if eq else None
        return URI("tel", m.group(2), "", None, tel_params)
    m = _ABSOLUTE_URI_RE.fullmatch(text)
    if m is not None and m.group(1).lower() not in ("sip", "sips"):
        return URI(m.group(1), opaque=m.group(2))
    raise _error("malformed URI " + repr(text[:80]), field)


# --- name-addr / addr-spec ---------------------------------------------------


class Address:
    """A ``name-addr`` or ``addr-spec`` with header parameters.

    Used by From, To, Contact, Route, Record-Route, Refer-To and friends.
    ``display_name`` is unquoted (None when absent); ``params`` are the header
    parameters after the URI (``tag``, ``expires``, ``q`` ...), names
    lower-cased, values as written.
    """

    __slots__ = ("display_name", "uri", "params")

    def __init__(
        self,
        uri: URI,
        display_name: str | None = None,
        params: dict[str, str | None] | None = None,
    ) -> None:
        self.uri = uri
        self.display_name = display_name
        self.params = {} if params is None else params

    @property
    def tag(self) -> str | None:
        """The ``tag`` parameter (dialog identification), or None."""
        return self.params.get("tag")

    def with_tag(self, tag: str) -> Address:
        """A copy of this address carrying ``tag``."""
        params = dict(self.params)
        params["tag"] = tag
        return Address(self.uri, self.display_name, params)

    def __str__(self) -> str:
        if self.display_name is not None:
            head = _quote(self.display_name) + " <" + str(self.uri) + ">"
        else:
            head = "<" + str(self.uri) + ">"
        return head + _format_params(self.params)

    def __repr__(self) -> str:
        return "Address(" + repr(str(self)) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Address):
            return NotImplemented
        return (
            self.uri == other.uri
            and self.display_name == other.display_name
            and self.params == other.params
        )

    def __hash__(self) -> int:
        return hash(str(self))


def parse_address(text: str, field: str | None = None) -> Address:
    """Parse one ``(name-addr / addr-spec) *(SEMI param)`` value.

    In the addr-spec form the URI ends at the first semicolon or whitespace
    and may not contain a comma, question mark or semicolon (section 20).
    """
    return _parse_address(text, field)


def _parse_address(text: str, field: str | None) -> Address:
    # The body of parse_address (a C function in the compiled build).
    text = text.strip()
    end = len(text)
    if end == 0:
        raise _error("empty address", field)
    display_name = None
    if text[0] == '"':
        close = _quoted_string_end(text, 0, field)
        display_name = _unquote(text[:close])
        pos = _skip_ws(text, close)
        if pos >= end or text[pos] != "<":
            raise _error("quoted display name not followed by <URI>", field)
    else:
        pos = text.find("<")
        if pos > 0:
            words = text[:pos].split()
            for word in words:
                if _TOKEN_RE.fullmatch(word) is None:
                    raise _error("display name is neither token nor quoted string", field)
            display_name = " ".join(words) if words else None
    if pos >= 0:
        close = text.find(">", pos)
        if close < 0:
            raise _error("missing > after URI", field)
        uri = _parse_uri(text[pos + 1 : close], field)
        return Address(uri, display_name, _parse_params(text, close + 1, field))
    # addr-spec
    i = 0
    while i < end and text[i] not in "; \t":
        i += 1
    uri_text = text[:i]
    if "?" in uri_text or "," in uri_text:
        raise _error("a URI with headers or commas must be enclosed in <>", field)
    return Address(_parse_uri(uri_text, field), None, _parse_params(text, i, field))


# --- Via ---------------------------------------------------------------------


class Via:
    """One Via header field value: ``SIP/2.0/UDP host:port;branch=...``.

    ``transport`` is upper-cased; ``params`` as in ``Address``.
    """

    __slots__ = ("protocol", "transport", "host", "port", "params")

    def __init__(
        self,
        transport: str,
        host: str,
        port: int | None = None,
        params: dict[str, str | None] | None = None,
        protocol: str = "SIP/2.0",
    ) -> None:
        self.protocol = protocol
        self.transport = transport.upper()
        self.host = host
        self.port = port
        self.params = {} if params is None else params

    @property
    def branch(self) -> str | None:
        """The transaction ``branch`` parameter, or None."""
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        """The ``received`` parameter (source address seen by the next hop)."""
        return self.params.get("received")

    @property
    def rport(self) -> int | None:
        """The ``rport`` port number (RFC 3581); None if absent or empty."""
        value = self.params.get("rport")
        if value is None or not value.isdigit():
            return None
        return int(value)

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else self.host + ":" + str(self.port)

    def __str__(self) -> str:
        return self.protocol + "/" + self.transport + " " + self.sent_by + _format_params(self.params)

    def __repr__(self) -> str:
        return "Via(" + repr(str(self)) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Via):
            return NotImplemented
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def parse_via(text: str, field: str | None = "Via") -> Via:
    """Parse one Via value (``sent-protocol LWS sent-by *( SEMI via-params )``)."""
    return _parse_via(text, field)


def _parse_via(text: str, field: str | None) -> Via:
    # The body of parse_via (a C function in the compiled build).
    m = _VIA_RE.match(text)
    if m is None:
        raise _error("malformed Via", field)
    port = None
    if m.group(5) is not None:
        port = int(m.group(5))
        if port > 65535:
            raise _error("port out of range", field)
    params = _parse_params(text, m.end(), field)
    return Via(m.group(3), m.group(4), port, params, m.group(1).upper() + "/" + m.group(2))


class CSeq:
    """The CSeq header: sequence number and method."""

    __slots__ = ("seq", "method")

    def __init__(self, seq: int, method: str) -> None:
        self.seq = seq
        self.method = method

    def __str__(self) -> str:
        return str(self.seq) + " " + self.method

    def __repr__(self) -> str:
        return "CSeq(" + str(self.seq) + ", " + repr(self.method) + ")"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CSeq):
            return NotImplemented
        return self.seq == other.seq and self.method == other.method

    def __hash__(self) -> int:
        return hash((self.seq, self.method))


def _parse_cseq(text: str) -> CSeq:
    m = _CSEQ_RE.fullmatch(text)
    if m is None:
        raise _error("malformed CSeq", "CSeq")
    seq = int(m.group(1))
    if seq > _MAX_CSEQ:
        raise _error("CSeq number must be less than 2**31", "CSeq")
    return CSeq(seq, m.group(2))


def parse_media_type(text: str) -> tuple[str, dict[str, str | None]]:
    """Parse a Content-Type value into ``("type/subtype", params)``.

    The media type is lower-cased; a quoted parameter value is unquoted.
    """
    m = _MEDIA_TYPE_RE.match(text)
    if m is None:
        raise _error("malformed media type", "Content-Type")
    params = _parse_params(text, m.end(), "Content-Type")
    for name, value in params.items():
        if value is not None and value.startswith('"'):
            params[name] = _unquote(value)
    return (m.group(1).lower() + "/" + m.group(2).lower(), params)


# --- headers and messages ----------------------------------------------------


class Headers:
    """The header fields of a message, in order, looked up case-insensitively.

    Names are stored canonically (``canonical_name``), so ``"v"``, ``"VIA"``
    and ``"Via"`` are the same field. ``get_all`` splits comma-separated list
    headers (Via, Contact, Route ...) into their elements. Values may not
    contain CR or LF: header injection is refused with ``ValueError``.
    """

    __slots__ = ("_names", "_keys", "_values", "_cache")

    def __init__(self, items: object = None) -> None:
        self._names: list[str] = []  # as written, canonicalised
        self._keys: list[str] = []  # lower-cased, for lookups
        self._values: list[str] = []
        # Parsed views (Via list, From, To, CSeq ...) by lower-case name, so a
        # message's structured headers are parsed once; any edit clears it.
        self._cache: dict[str, Any] = {}
        if items is not None:
            for name, value in items:  # type: ignore[attr-defined]
                self.add(name, value)

    def _append(self, name: str, value: str) -> None:
        # Trusted path for callers that have validated both already.
        entry = _name_and_key(name)
        if self._cache:
            self._cache = {}
        self._names.append(entry[0])
        self._keys.append(entry[1])
        self._values.append(value)

    def add(self, name: str, value: object) -> None:
        """Append a header field (after any others of that name)."""
        text = str(value)
        if _TOKEN_RE.fullmatch(name) is None:
            raise ValueError("name: header field name must be a token, got " + repr(name))
        if "\r" in text or "\n" in text:
            raise ValueError("value: header field value may not contain CR or LF")
        self._append(name, text)

    def set(self, name: str, value: object) -> None:
        """Replace every field called ``name`` with one field, in the first's place."""
        key = canonical_name(name).lower()
        if key not in self._keys:
            self.add(name, value)
            return
        first = self._keys.index(key)
        self.remove(name)
        self.add(name, value)
        # move the new field back to where the first old one was
        self._names.insert(first, self._names.pop())
        self._keys.insert(first, self._keys.pop())
        self._values.insert(first, self._values.pop())

    def remove(self, name: str) -> int:
        """Remove every field called ``name``; return how many there were."""
        key = canonical_name(name).lower()
        if self._cache:
            self._cache = {}
        removed = 0
        i = len(self._keys) - 1
        while i >= 0:
            if self._keys[i] == key:
                del self._names[i]
                del self._keys[i]
                del self._values[i]
                removed += 1
            i -= 1
        return removed

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of ``name`` as written, or ``default``."""
        key = _name_and_key(name)[1]
        # list.index scans in C; the stack asks for a dozen fields a message
        if key in self._keys:
            return self._values[self._keys.index(key)]
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of ``name``; list headers are split at their commas."""
        key = _name_and_key(name)[1]
        out: list[str] = []
        keys = self._keys
        if key not in keys:  # the common answer, found by a scan in C
            return out
        split = key in _LIST_HEADERS
        for i in range(len(keys)):
            if keys[i] == key:
                if split:
                    out.extend(split_header_list(self._values[i], self._names[i]))
                else:
                    out.append(self._values[i])
        return out

    def count(self, name: str) -> int:
        """How many fields (not list elements) are called ``name``."""
        return self._keys.count(canonical_name(name).lower())

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs in order."""
        return list(zip(self._names, self._values))

    def copy(self) -> Headers:
        other = Headers()
        other._names = list(self._names)
        other._keys = list(self._keys)
        other._values = list(self._values)
        return other  # with an empty cache: the copy may be edited

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and canonical_name(name).lower() in self._keys

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(zip(self._names, self._values))

    def __len__(self) -> int:
        return len(self._names)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Headers):
            return NotImplemented
        return self._keys == other._keys and self._values == other._values

    def __repr__(self) -> str:
        return "Headers(" + repr(self.items()) + ")"

    def encode_into(self, lines: list[str], compact: bool) -> None:
        """Append ``Name: value`` lines, Content-Length left out (see encode)."""
        for i in range(len(self._names)):
            key = self._keys[i]
            if key == "content-length":
                continue
            name = self._names[i]
            if compact:
                name = _COMPACT_OF.get(key, name)
            lines.append(name + ": " + self._values[i])


class Message:
    """What requests and responses share: headers, body, typed accessors.

    The accessors (``to``, ``vias``, ``cseq`` ...) parse a header once and
    keep the result until ``headers`` is edited. Treat what they return as
    values: to change a header, set its text, e.g.
    ``msg.headers.set("To", msg.to.with_tag("abc"))``.
    """

    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = Headers() if headers is None else headers
        self.body = bytes(body)

    def _required(self, name: str) -> str:
        value = self.headers.get(name)
        if value is None:
            raise _error("missing " + name + " header field", name)
        return value

    def _address(self, key: str, name: str) -> Address:
        cache = self.headers._cache
        value = cache.get(key)
        if value is None:
            value = cache[key] = _parse_address(self._required(name), name)
        return value

    @property
    def call_id(self) -> str:
        return self._required("Call-ID")

    @property
    def cseq(self) -> CSeq:
        cache = self.headers._cache
        value = cache.get("cseq")
        if value is None:
            value = cache["cseq"] = _parse_cseq(self._required("CSeq"))
        return value

    @property
    def from_(self) -> Address:
        return self._address("from", "From")

    @property
    def to(self) -> Address:
        return self._address("to", "To")

    @property
    def vias(self) -> list[Via]:
        """Every Via value, topmost first (a new list; the Vias are shared)."""
        cache = self.headers._cache
        value = cache.get("via")
        if value is None:
            value = cache["via"] = [_parse_via(v, "Via") for v in self.headers.get_all("Via")]
        return list(value)

    @property
    def top_via(self) -> Via:
        cache = self.headers._cache
        value = cache.get("via")
        if value is None:
            value = cache["via"] = [_parse_via(v, "Via") for v in self.headers.get_all("Via")]
        if not value:
            raise _error("missing Via header field", "Via")
        return value[0]  # type: ignore[no-any-return]

    @property
    def contacts(self) -> list[Address]:
        cache = self.headers._cache
        value = cache.get("contact")
        if value is None:
            value = cache["contact"] = [_parse_address(v, "Contact")
                                        for v in self.headers.get_all("Contact") if v != "*"]
        return list(value)

    @property
    def routes(self) -> list[Address]:
        return [_parse_address(value, "Route") for value in self.headers.get_all("Route")]

    @property
    def record_routes(self) -> list[Address]:
        return [_parse_address(value, "Record-Route")
                for value in self.headers.get_all("Record-Route")]

    @property
    def max_forwards(self) -> int | None:
        value = self.headers.get("Max-Forwards")
        return None if value is None else _parse_max_forwards(value)

    @property
    def expires(self) -> int | None:
        value = self.headers.get("Expires")
        return None if value is None else _parse_delta_seconds(value, "Expires")

    @property
    def content_type(self) -> str | None:
        """The media type, lower-cased, without parameters (None if absent)."""
        value = self.headers.get("Content-Type")
        return None if value is None else parse_media_type(value)[0]

    def _start_line(self) -> str:
        raise NotImplementedError

    def encode(self, compact: bool = False) -> bytes:
        """The message on the wire. Content-Length always matches the body.

        ``compact=True`` uses the compact header names where there is one.
        """
        lines = [self._start_line()]
        self.headers.encode_into(lines, compact)
        lines.append(("l: " if compact else "Content-Length: ") + str(len(self.body)))
        lines.append("\r\n")
        return "\r\n".join(lines).encode("utf-8", "surrogateescape") + self.body

    def __bytes__(self) -> bytes:
        return self.encode()


class Request(Message):
    """A SIP request: method, Request-URI, headers, body."""

    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: URI | str,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        Message.__init__(self, headers, body)
        if _TOKEN_RE.fullmatch(method) is None:
            raise ValueError("method: must be a token, got " + repr(method))
        self.method = method
        self.uri = uri if isinstance(uri, URI) else parse_uri(uri, "Request-URI")

    def _start_line(self) -> str:
        return self.method + " " + str(self.uri) + " SIP/2.0"

    def __repr__(self) -> str:
        return "<Request " + self.method + " " + str(self.uri) + ">"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Request):
            return NotImplemented
        return (
            self.method == other.method
            and self.uri == other.uri
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]


class Response(Message):
    """A SIP response: status code, reason phrase, headers, body."""

    __slots__ = ("status_code", "reason")

    def __init__(
        self,
        status_code: int,
        reason: str | None = None,
        headers: Headers | None = None,
        body: bytes = b"",
    ) -> None:
        Message.__init__(self, headers, body)
        if not 100 <= status_code <= 699:
            raise ValueError("status_code: must be in 100..699, got " + repr(status_code))
        if reason is None:
            reason = REASON_PHRASES.get(status_code, "")
        elif "\r" in reason or "\n" in reason:
            raise ValueError("reason: may not contain CR or LF")
        self.status_code = status_code
        self.reason = reason

    def _start_line(self) -> str:
        return "SIP/2.0 " + str(self.status_code) + " " + self.reason

    def __repr__(self) -> str:
        return "<Response " + str(self.status_code) + " " + self.reason + ">"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Response):
            return NotImplemented
        return (
            self.status_code == other.status_code
            and self.reason == other.reason
            and self.headers == other.headers
            and self.body == other.body
        )

    __hash__ = None  # type: ignore[assignment]


def _parse_max_forwards(value: str) -> int:
    if _DIGITS_RE.fullmatch(value) is None:
        raise _error("Max-Forwards must be a number", "Max-Forwards")
    hops = int(value)
    if hops > 255:
        raise _error("Max-Forwards must be at most 255", "Max-Forwards")
    return hops


# --- parsing -----------------------------------------------------------------


class Limits:
    """Bounds that protect the parser from abusive input.

    ``max_message_size`` bounds a datagram or the header section plus body of
    a stream message (513); ``max_body_size`` bounds the body (413);
    ``max_header_count`` the number of header lines and ``max_line_length``
    the length of one line, folding included (both 400).
    """

    __slots__ = ("max_message_size", "max_body_size", "max_header_count", "max_line_length")

    def __init__(
        self,
        max_message_size: int = 65535,
        max_body_size: int = 32768,
        max_header_count: int = 128,
        max_line_length: int = 8192,
    ) -> None:
        for name, value in (
            ("max_message_size", max_message_size),
            ("max_body_size", max_body_size),
            ("max_header_count", max_header_count),
            ("max_line_length", max_line_length),
        ):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(name + ": must be a positive int, got " + repr(value))
        self.max_message_size = max_message_size
        self.max_body_size = max_body_size
        self.max_header_count = max_header_count
        self.max_line_length = max_line_length


_DEFAULT_LIMITS = Limits()


def _limit_error(message: str, field: str, status_code: int, offset: int = 0) -> SIPLimitError:
    return SIPLimitError(message, offset, field, status_code, REASON_PHRASES[status_code])


def _decode_line(line: bytes, offset: int, field: str | None) -> str:
    text = line.decode("utf-8", "surrogateescape")
    if _BAD_CHAR_RE.search(text) is not None:
        raise _error("control character in header section", field, offset)
    return text


def _parse_start_line(line: str) -> Message:
    """Request-Line or Status-Line: exactly single spaces between elements."""
    if line.startswith("SIP/") or line[:4].upper() == "SIP/":
        version, sp, rest = line.partition(" ")
        _check_version(version)
        code_text, sp2, reason = rest.partition(" ")
        if not sp or not sp2 or len(code_text) != 3 or not code_text.isdigit():
            raise _error("malformed Status-Line", "start-line", 0)
        code = int(code_text)
        if code < 100 or code > 699:
            raise _error("status code out of range", "start-line", 0)
        return Response(code, reason)
    parts = line.split(" ")
    if len(parts) != 3:
        raise _error("Request-Line must be 'Method SP Request-URI SP SIP-Version'",
                     "start-line", 0)
    method, uri_text, version = parts
    if _TOKEN_RE.fullmatch(method) is None:
        raise _error("method is not a token", "start-line", 0)
    _check_version(version)
    uri = _parse_uri(uri_text, "Request-URI")
    if uri.headers is not None:
        raise _error("headers are not allowed in a Request-URI", "Request-URI", 0)
    return Request(method, uri)


def _check_version(version: str) -> None:
    if version == "SIP/2.0":  # what nearly every message says: no regex needed
        return
    m = _VERSION_RE.fullmatch(version)
    if m is None:
        raise _error("malformed SIP-Version", "start-line", 0)
    if m.group(1) != "2" or m.group(2) != "0":
        raise SIPParseError("unsupported SIP version " + version, 0, "start-line", 505,
                            "Version Not Supported")


def _longer_than(line: str, limit: int) -> bool:
    """Whether ``line`` takes more than ``limit`` bytes in UTF-8.

    A character takes one to four bytes (surrogateescape keeps an
    undecodable byte as one character), so encoding is needed only when
    the character count leaves the answer open.
    """
    length = len(line)
    if length > limit:
        return True
    if length * 4 <= limit:
        return False
    return len(line.encode("utf-8", "surrogateescape")) > limit


def _line_offset(lines: list[str], index: int, base: int) -> int:
    """Byte offset of ``lines[index]`` in the buffer (lines joined by CRLF)."""
    offset = base
    for i in range(index):
        offset += len(lines[i].encode("utf-8", "surrogateescape")) + 2
    return offset


def _parse_head(head: bytes, base: int, limits: Limits) -> Message:
    """Parse start line and header fields (``head`` excludes the empty line).

    ``base`` is the offset of ``head`` in the received buffer, for error
    offsets. Validates the fields every layer above relies on, so a message
    that comes out of here can be routed without further syntax surprises.
    """
    # One decode and one split for the whole section. Limits and error
    # offsets are in bytes; the byte offset of a line is only worked out when
    # an error needs it (_line_offset).
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split("\r\n")
    if len(lines) > limits.max_header_count + 1:
        raise _limit_error("too many header fields", "header", 400, base)
    max_line = limits.max_line_length
    if _longer_than(lines[0], max_line):
        raise _limit_error("start line too long", "start-line", 400, base)
    if len(head.translate(None, _PLAIN_BYTES)) != 2 * (len(lines) - 1):
        bad = _BAD_CHAR_RE.search(text)
        if bad is not None:
            position = len(text[: bad.start()].encode("utf-8", "surrogateescape"))
            raise _error("control character in header section", None, base + position)
    msg = _parse_start_line(lines[0])
    # The message is new, so its header lists are filled directly; a field
    # is appended when the next line shows it is not folded any further.
    names = msg.headers._names
    keys = msg.headers._keys
    values = msg.headers._values
    entry = None  # (canonical name, key) of the field being read
    value = ""
    name_line = 1  # index of the line where that field starts
    for i in range(1, len(lines)):
        line = lines[i]
        if line and (line[0] == " " or line[0] == "\t"):  # folded continuation (LWS)
            if entry is None:
                raise _error("continuation line before the first header field", "header",
                             _line_offset(lines, i, base))
            line = line.strip(_WS)
            value = value + " " + line if value else line
            if len(value) > max_line:
                raise _limit_error("header field too long", entry[0], 400,
                                   _line_offset(lines, name_line, base))
        else:
            if entry is not None:
                names.append(entry[0])
                keys.append(entry[1])
                values.append(value)
            if _longer_than(line, max_line):
                raise _limit_error("header field too long", "header", 400,
                                   _line_offset(lines, i, base))
            colon = line.find(":")
            if colon <= 0:
                raise _error("header line without a colon", "header", _line_offset(lines, i, base))
            name = line[:colon]
            entry = _SPELLINGS.get(name)
            if entry is None:
                name = name.rstrip(_WS)
                if _TOKEN_RE.fullmatch(name) is None:
                    raise _error("header field name is not a token", "header",
                                 _line_offset(lines, i, base))
                entry = _name_and_key(name)
            value = line[colon + 1 :].strip(_WS)
            name_line = i
    if entry is not None:
        names.append(entry[0])
        keys.append(entry[1])
        values.append(value)
    _validate(msg)
    return msg


def _validate(msg: Message) -> None:
    """Syntax of the fields that routing, transactions and framing depend on."""
    headers = msg.headers
    keys = headers._keys
    values = headers._values
    # One pass notes where each field first occurs, so the checks below look
    # fields up in a dict instead of scanning the list once per field.
    first: dict[str, int] = {}
    duplicated = False
    for i in range(len(keys)):
        key = keys[i]
        if key not in first:
            first[key] = i
        elif key in _SINGLE_HEADERS:
            duplicated = True
    if duplicated:  # name the first in _SINGLE_HEADERS's order, whatever came first
        for key in _SINGLE_HEADERS:
            if keys.count(key) > 1:
                raise _error("more than one " + canonical_name(key) + " header field",
                             canonical_name(key))
    for key in ("via", "from", "to", "call-id", "cseq"):
        if key not in first:
            raise _error("missing " + canonical_name(key) + " header field", canonical_name(key))
    # Parsed once here and kept in the headers' cache for the layers above.
    cache = headers._cache
    cache["via"] = [_parse_via(via, "Via") for via in headers.get_all("Via")]
    cache["from"] = _parse_address(values[first["from"]], "From")
    cache["to"] = _parse_address(values[first["to"]], "To")
    cseq = cache["cseq"] = _parse_cseq(values[first["cseq"]])
    if isinstance(msg, Request) and cseq.method != msg.method:
        raise _error("CSeq method does not match the request method", "CSeq")
    call_id = values[first["call-id"]]
    if not call_id or " " in call_id or "\t" in call_id:
        raise _error("malformed Call-ID", "Call-ID")
    if "max-forwards" in first:
        _parse_max_forwards(values[first["max-forwards"]])
    contacts = []
    if "contact" in first:
        contacts = [_parse_address(value, "Contact")
                    for value in headers.get_all("Contact") if value != "*"]
    cache["contact"] = contacts
    for name in ("Route", "Record-Route"):
        if name.lower() in first:
            for value in headers.get_all(name):
                _parse_address(value, name)
    if "date" in first and _DATE_RE.fullmatch(values[first["date"]]) is None:
        raise _error("malformed Date (RFC 1123 date in GMT expected)", "Date")
    if "content-type" in first:
        parse_media_type(values[first["content-type"]])


def _content_length(msg: Message) -> int | None:
    value = msg.headers.get("Content-Length")
    if value is None:
        return None
    if _DIGITS_RE.fullmatch(value) is None:
        raise _error("Content-Length must be a non-negative number", "Content-Length")
    return int(value)


def parse_message(data: bytes | bytearray | memoryview, limits: Limits | None = None) -> Message:
    """Parse one message received as a datagram (UDP, or a whole buffer).

    Section 18.3: Content-Length may be absent (the body is the rest of the
    datagram); octets past Content-Length are discarded; a Content-Length
    larger than what arrived is an error (400). Leading CRLFs are skipped
    (section 7.5). Raises ``SIPParseError`` (or ``SIPLimitError``) carrying
    the status to answer with.
    """
    if limits is None:
        limits = _DEFAULT_LIMITS
    buf = bytes(data)
    if len(buf) > limits.max_message_size:
        raise _limit_error("message larger than " + str(limits.max_message_size) + " bytes",
                           "message", 513)
    start = 0
    while buf.startswith(b"\r\n", start):
        start += 2
    end = buf.find(b"\r\n\r\n", start)
    if end < 0:
        raise _error("no empty line after the header section", "header", len(buf))
    msg = _parse_head(buf[start:end], start, limits)
    body_start = end + 4
    available = len(buf) - body_start
    length = _content_length(msg)
    if length is None:
        length = available
    elif length > available:
        raise _error("Content-Length larger than the message", "Content-Length", body_start)
    if length > limits.max_body_size:
        raise _limit_error("body larger than " + str(limits.max_body_size) + " bytes", "body",
                           413, body_start)
    msg.body = buf[body_start : body_start + length]
    return msg


class KeepAlive:
    """A CRLF CRLF keep-alive ping seen between stream messages (RFC 5626
    section 4.4.1); answer it with a single CRLF ("pong")."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "KEEPALIVE"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, KeepAlive)

    def __hash__(self) -> int:
        return 0


KEEPALIVE = KeepAlive()


class StreamParser:
    """Frames messages on a stream transport (TCP, TLS) by Content-Length.

    ``feed(data)`` returns the events completed by ``data``, in order:
    ``Request``/``Response`` objects, ``KEEPALIVE`` for a CRLF CRLF ping,
    and at most one ``SIPParseError``: after a framing or syntax error the
    stream cannot be resynchronised, so the parser stops (``failed`` is set,
    later data is ignored) and the connection should be closed after
    answering the error. The events do not depend on how the bytes were
    chunked: one chunk gives the same result as byte-at-a-time. Memory stays
    within ``limits.max_message_size`` plus one chunk.
    """

    __slots__ = ("limits", "failed", "_buffer", "_scanned", "_head", "_body_length")

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = _DEFAULT_LIMITS if limits is None else limits
        self.failed = False
        self._buffer = bytearray()
        self._scanned = 0  # bytes of _buffer already searched for CRLF CRLF
        self._head: Message | None = None  # parsed head awaiting its body
        self._body_length = 0

    def feed(self, data: bytes | bytearray | memoryview) -> list[object]:
        """Add received bytes; return the events they complete."""
        events: list[object] = []
        if self.failed:
            return events
        self._buffer += data
        try:
            self._drain(events)
        except SIPParseError as exc:
            self.failed = True
            self._buffer = bytearray()
            self._head = None
            events.append(exc)
        return events

    def _drain(self, events: list[object]) -> None:
        buf = self._buffer
        limits = self.limits
        while True:
            head = self._head
            if head is None:
                # Between messages: CRLF CRLF is a ping, a lone CRLF a pong.
                while len(buf) >= 2 and buf[0] == 13 and buf[1] == 10:
                    if len(buf) < 4:
                        return  # could still become a ping
                    if buf[2] == 13 and buf[3] == 10:
                        events.append(KEEPALIVE)
                        del buf[:4]
                    else:
                        del buf[:2]
                    self._scanned = 0
                if not buf or (len(buf) == 1 and buf[0] == 13):
                    return
                end = buf.find(b"\r\n\r\n", max(0, self._scanned - 3))
                if end < 0 or end + 4 > limits.max_message_size:
                    if end >= 0 or len(buf) > limits.max_message_size:
                        raise _limit_error("header section larger than "
                                           + str(limits.max_message_size) + " bytes",
                                           "header", 513)
                    self._scanned = len(buf)
                    return
                head = _parse_head(bytes(buf[:end]), 0, limits)
                length = _content_length(head)
                if length is None:
                    raise _error("Content-Length is mandatory on stream transports",
                                 "Content-Length", end)
                if length > limits.max_body_size:
                    raise _limit_error("body larger than " + str(limits.max_body_size)
                                       + " bytes", "body", 413, end + 4)
                if end + 4 + length > limits.max_message_size:
                    raise _limit_error("message larger than " + str(limits.max_message_size)
                                       + " bytes", "message", 513)
                del buf[: end + 4]
                self._scanned = 0
                self._head = head
                self._body_length = length
            if len(buf) < self._body_length:
                return
            head.body = bytes(buf[: self._body_length])
            del buf[: self._body_length]
            self._head = None
            events.append(head)


# --- multipart bodies (RFC 2046 section 5.1, as used by RFC 5621) -------------


class BodyPart:
    """One part of a multipart body: its own headers and content."""

    __slots__ = ("headers", "body")

    def __init__(self, headers: Headers | None = None, body: bytes = b"") -> None:
        self.headers = Headers() if headers is None else headers
        self.body = bytes(body)

    @property
    def content_type(self) -> str | None:
        value = self.headers.get("Content-Type")
        return None if value is None else parse_media_type(value)[0]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BodyPart):
            return NotImplemented
        return self.headers == other.headers and self.body == other.body

    def __repr__(self) -> str:
        return "BodyPart(" + repr(self.headers.items()) + ", " + repr(self.body[:40]) + ")"

    __hash__ = None  # type: ignore[assignment]


def parse_multipart(body: bytes, content_type: str) -> list[BodyPart]:
    """Split a ``multipart/*`` body into its parts.

    ``content_type`` is the message's Content-Type value, whose ``boundary``
    parameter delimits the parts. Preamble and epilogue are ignored.
    """
    media_type, params = parse_media_type(content_type)
    boundary = params.get("boundary")
    if not media_type.startswith("multipart/") or not boundary:
        raise _error("not a multipart media type with a boundary", "Content-Type")
    delimiter = b"--" + boundary.encode("utf-8", "surrogateescape")
    # The first delimiter may open the body; every other one follows a CRLF.
    if body.startswith(delimiter):
        pos = 0
    else:
        pos = body.find(b"\r\n" + delimiter)
        if pos < 0:
            raise _error("multipart body without its boundary", "body")
        pos += 2
    parts: list[BodyPart] = []
    while True:
        pos += len(delimiter)
        if body.startswith(b"--", pos):
            return parts  # close-delimiter
        line_end = body.find(b"\r\n", pos)
        if line_end < 0:
            raise _error("multipart body ends without a close-delimiter", "body")
        nxt = body.find(b"\r\n" + delimiter, line_end)
        if nxt < 0:
            raise _error("multipart body ends without a close-delimiter", "body")
        parts.append(_parse_body_part(body[line_end + 2 : nxt]))
        pos = nxt + 2


def _parse_body_part(chunk: bytes) -> BodyPart:
    if chunk.startswith(b"\r\n"):  # no part headers
        return BodyPart(Headers(), chunk[2:])
    end = chunk.find(b"\r\n\r\n")
    if end < 0:
        raise _error("body part without an empty line after its headers", "body")
    headers = Headers()
    for raw in chunk[:end].split(b"\r\n"):
        line = _decode_line(raw, 0, "body")
        if raw[:1] in (b" ", b"\t") and len(headers):
            last = len(headers) - 1
            headers._values[last] = headers._values[last] + " " + line.strip(_WS)
            continue
        name, colon, value = line.partition(":")
        name = name.rstrip(_WS)
        if not colon or _TOKEN_RE.fullmatch(name) is None:
            raise _error("malformed body part header", "body")
        headers._append(name, value.strip(_WS))
    return BodyPart(headers, chunk[end + 4 :])


def encode_multipart(parts: list[BodyPart], boundary: str,
                     subtype: str = "mixed") -> tuple[bytes, str]:
    """Encode ``parts``; return ``(body, content_type_value)``.

    Raises ``ValueError`` if the boundary occurs inside a part.
    """
    if _TOKEN_RE.fullmatch(boundary) is None:
        raise ValueError("boundary: must be a token, got " + repr(boundary))
    delimiter = b"--" + boundary.encode("ascii")
    out = []
    for part in parts:
        if delimiter in part.body:
            raise ValueError("boundary: occurs inside a body part")
        lines: list[str] = []
        part.headers.encode_into(lines, False)
        head = "".join(line + "\r\n" for line in lines).encode("utf-8", "surrogateescape")
        out.append(delimiter + b"\r\n" + head + b"\r\n" + part.body + b"\r\n")
    out.append(delimiter + b"--\r\n")
    return b"".join(out), "multipart/" + subtype + ";boundary=" + boundary


# --- the session description in a body (RFC 5621, RFC 3261 section 20.11) ------

# Content-Transfer-Encodings that leave the octets as they are (RFC 2045
# section 6.2); SIP bodies are sent as they are (RFC 5621 section 3.2), so a
# part in base64 or quoted-printable is one we do not understand.
_IDENTITY_ENCODINGS = ("7bit", "8bit", "binary")
# Nesting this deep is abuse, not MIME: the bound keeps the recursion short.
_MAX_MULTIPART_DEPTH = 8


def session_description(message: Message | BodyPart) -> bytes | None:
    """The session description (SDP) that ``message`` carries, or None.

    The body is either ``application/sdp`` itself or a multipart body with
    an ``application/sdp`` part whose disposition is ``session`` (the
    default for SDP, RFC 3261 section 20.11). Multipart bodies (RFC 5621)
    are searched part by part, nested ones included, except that of a
    ``multipart/alternative`` only the last part we can use counts
    (alternatives come in increasing order of preference, RFC 2046 section
    5.1.4). Parts in other media types or dispositions (ISUP, PIDF-LO,
    an S/MIME signature) are skipped when their Content-Disposition says
    ``handling=optional``.

    Raises ``SIPError`` with status 415 when the body, or a part of it
    marked (or defaulting to) ``handling=required``, is one we cannot
    use, and ``SIPParseError`` (400) for a malformed multipart body or
    more than one session description.
    """
    if not message.body:
        return None
    found = _session_descriptions(message.headers, message.body, 0)
    if found is None:
        if _handling(message.headers) == "optional":
            return None
        content_type = message.headers.get("Content-Type")
        raise SIPError("cannot use a required body of type " + repr(content_type), 415,
                       "Unsupported Media Type")
    if len(found) > 1:
        raise _error("more than one session description in the body", "body")
    return found[0] if found else None


def _disposition(headers: Headers) -> tuple[str | None, dict[str, str | None]]:
    """``(disposition type, params)`` of Content-Disposition; type None if absent."""
    value = headers.get("Content-Disposition")
    if value is None:
        return (None, {})
    m = _TOKEN_RE.match(value)
    if m is None:
        raise _error("malformed Content-Disposition", "Content-Disposition")
    return (m.group(0).lower(), _parse_params(value, m.end(), "Content-Disposition"))


def _handling(headers: Headers) -> str:
    """The ``handling`` parameter of Content-Disposition ("required" by default)."""
    handling = _disposition(headers)[1].get("handling")
    return "required" if handling is None else handling.lower()


def _session_descriptions(headers: Headers, body: bytes, depth: int) -> list[bytes] | None:
    """The SDP bodies of one entity (message or part); None if we cannot use it."""
    content_type = headers.get("Content-Type")
    if content_type is None:
        return None  # RFC 3261 section 20.15: a body needs its type
    encoding = headers.get("Content-Transfer-Encoding")
    if encoding is not None and encoding.strip(_WS).lower() not in _IDENTITY_ENCODINGS:
        return None
    media_type = parse_media_type(content_type)[0]
    if not media_type.startswith("multipart/"):
        if media_type != "application/sdp":
            return None
        disposition = _disposition(headers)[0]
        return [body] if disposition is None or disposition == "session" else None
    if depth >= _MAX_MULTIPART_DEPTH:
        raise _error("multipart bodies nested more than " + str(_MAX_MULTIPART_DEPTH)
                     + " deep", "body")
    parts = parse_multipart(body, content_type)
    if media_type == "multipart/alternative":
        for i in range(len(parts) - 1, -1, -1):
            found = _session_descriptions(parts[i].headers, parts[i].body, depth + 1)
            if found is not None:
                return found
        return None
    # mixed, related and any other subtype: every part counts
    collected: list[bytes] = []
    for part in parts:
        found = _session_descriptions(part.headers, part.body, depth + 1)
        if found is not None:
            collected.extend(found)
        elif _handling(part.headers) != "optional":
            return None
    return collected
