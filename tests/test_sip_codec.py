"""The SIP message codec, over both builds (pure Python and Cython)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rtpcore.errors import ParseError, SIPError, SIPLimitError, SIPParseError
from sip_support import codec_builds

BUILDS = codec_builds()


@pytest.fixture(params=BUILDS, ids=[name for name, _ in BUILDS])
def codec(request):  # type: ignore[no-untyped-def]
    return request.param[1]


def crlf(*lines: str, body: str = "") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


INVITE = crlf(
    "INVITE sip:bob@biloxi.example.com SIP/2.0",
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;rport",
    "Max-Forwards: 70",
    'To: "Bob" <sip:bob@biloxi.example.com>',
    'From: "Alice" <sip:alice@atlanta.example.com>;tag=1928301774',
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "Contact: <sip:alice@pc33.atlanta.example.com>",
    "Content-Type: application/sdp",
    "Content-Length: 4",
    body="v=0\n",
)
OK_200 = crlf(
    "SIP/2.0 200 OK",
    "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.1;rport=5066",
    "To: <sip:bob@biloxi.example.com>;tag=a6c85cf",
    "From: <sip:alice@atlanta.example.com>;tag=1928301774",
    "Call-ID: a84b4c76e66710@pc33.atlanta.example.com",
    "CSeq: 314159 INVITE",
    "Content-Length: 0",
)


# --- the builds ---------------------------------------------------------------


def test_compiled_build_uses_the_pxd_types() -> None:
    if os.environ.get("RTPCORE_NO_EXTENSIONS"):
        pytest.skip("extensions off")
    from rtpcore.sip import _codec, _codec_c

    assert _codec_c.__file__.endswith(".abi3.so")  # stable ABI, like _core
    # The .pxd turns helpers into C functions, invisible from Python ...
    assert hasattr(_codec, "_parse_head") and not hasattr(_codec_c, "_parse_head")
    # ... and classes into extension types with slots, no instance __dict__.
    assert not hasattr(_codec_c.Headers(), "__dict__")
    assert type(_codec_c.Request.__dict__["method"]).__name__ == "getset_descriptor"
    import rtpcore.sip

    assert rtpcore.sip.COMPILED and rtpcore.sip.Request is _codec_c.Request


@pytest.mark.parametrize("env", ["1", None])
def test_loader_honours_rtpcore_no_extensions(env: str | None) -> None:
    environ = dict(os.environ)
    environ.pop("RTPCORE_NO_EXTENSIONS", None)
    if env is not None:
        environ["RTPCORE_NO_EXTENSIONS"] = env
    out = subprocess.run(
        [sys.executable, "-c", "import rtpcore.sip as s; print(s.COMPILED, s.Request.__module__)"],
        env=environ, capture_output=True, text=True, check=True, timeout=30,
    ).stdout.split()
    assert out == (["False", "rtpcore.sip._codec"] if env else ["True", "rtpcore.sip._codec_c"])


def test_sip_errors_carry_their_status_and_pickle() -> None:
    import pickle

    from rtpcore.errors import RtpcoreError, SIPError

    limit = SIPLimitError("too big", 7, "body", 413, "Request Entity Too Large")
    again = pickle.loads(pickle.dumps(limit))
    assert type(again) is SIPLimitError
    assert (again.status_code, again.reason, again.offset, again.field, again.layer) == (
        413, "Request Entity Too Large", 7, "body", "sip")
    assert isinstance(again, SIPParseError) and isinstance(again, ParseError)
    assert isinstance(again, SIPError) and isinstance(again, RtpcoreError)
    assert (SIPParseError("x").status_code, SIPError("y", 503).status_code) == (400, 503)
    plain = pickle.loads(pickle.dumps(SIPError("busy", 486, "Busy Here")))
    assert (plain.status_code, plain.reason, str(plain)) == (486, "Busy Here", "busy")


# --- messages -----------------------------------------------------------------


def test_parse_invite(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message(INVITE)
    assert isinstance(msg, codec.Request)
    assert msg.method == "INVITE" and msg.uri.user == "bob"
    assert msg.to.display_name == "Bob" and msg.to.tag is None
    assert msg.from_.tag == "1928301774"
    assert msg.call_id == "a84b4c76e66710@pc33.atlanta.example.com"
    assert msg.cseq == codec.CSeq(314159, "INVITE")
    via = msg.top_via
    assert (via.transport, via.host, via.port, via.branch, via.rport) == (
        "UDP", "pc33.atlanta.example.com", None, "z9hG4bK776asdhds", None)
    assert "rport" in via.params
    assert msg.content_type == "application/sdp"
    assert msg.body == b"v=0\n"
    assert msg.encode() == INVITE


def test_parse_response(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message(OK_200)
    assert isinstance(msg, codec.Response)
    assert (msg.status_code, msg.reason) == (200, "OK")
    assert msg.top_via.received == "192.0.2.1" and msg.top_via.rport == 5066
    assert msg.to.tag == "a6c85cf"
    assert msg.encode() == OK_200


def test_accepts_any_buffer(codec) -> None:  # type: ignore[no-untyped-def]
    expected = codec.parse_message(INVITE).encode()
    for buf in (bytearray(INVITE), memoryview(INVITE)):
        assert codec.parse_message(buf).encode() == expected


def test_compact_forms_expand_and_can_be_emitted(codec) -> None:  # type: ignore[no-untyped-def]
    data = crlf(
        "OPTIONS sip:a@b SIP/2.0", "v: SIP/2.0/TCP h;branch=z9hG4bK1", "f: <sip:x@y>;tag=1",
        "t: <sip:a@b>", "i: cid", "CSeq: 1 OPTIONS", "m: <sip:x@h>", "k: timer, 100rel",
        "c: text/plain", "l: 2", body="hi")
    msg = codec.parse_message(data)
    assert [name for name, _ in msg.headers][:8] == [
        "Via", "From", "To", "Call-ID", "CSeq", "Contact", "Supported", "Content-Type"]
    assert msg.headers.get_all("supported") == ["timer", "100rel"]
    compact = msg.encode(compact=True)
    assert b"\r\nv: SIP/2.0/TCP" in compact and b"\r\nl: 2\r\n\r\nhi" in compact
    assert codec.parse_message(compact).encode() == msg.encode()


def test_multi_value_headers_split_outside_quotes_and_brackets(codec) -> None:  # type: ignore[no-untyped-def]
    data = crlf(
        "REGISTER sip:r SIP/2.0", "Via: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b;branch=z9hG4bK2",
        "Via: SIP/2.0/UDP c;branch=z9hG4bK3", "From: <sip:x@y>;tag=1", "To: <sip:x@y>",
        "Call-ID: c", "CSeq: 2 REGISTER",
        'Contact: "Doe, John" <sip:j,k@h;x=1>;q=0.5, <sip:k@h>;expires=60',
        'WWW-Authenticate: Digest realm="a,b", nonce="n"')
    msg = codec.parse_message(data)
    assert [v.host for v in msg.vias] == ["a", "b", "c"]
    assert [c.display_name for c in msg.contacts] == ["Doe, John", None]
    assert msg.contacts[1].params == {"expires": "60"}
    # a challenge is not a list: its commas separate parameters
    assert msg.headers.get_all("WWW-Authenticate") == ['Digest realm="a,b", nonce="n"']


def test_header_folding(codec) -> None:  # type: ignore[no-untyped-def]
    data = crlf("OPTIONS sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h", "\t;branch=z9hG4bK1",
                "From: <sip:x@y>", " ;tag=1", "To: <sip:a@b>", "Call-ID: c",
                "CSeq: 1", "  OPTIONS", "Subject: one", "   two")
    msg = codec.parse_message(data)
    assert msg.top_via.branch == "z9hG4bK1" and msg.from_.tag == "1"
    assert msg.headers.get("Subject") == "one two"


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("sip:alice@atlanta.com", ("sip", "alice", None, "atlanta.com", None, {})),
        ("sip:alice:secretword@atlanta.com;transport=tcp",
         ("sip", "alice", "secretword", "atlanta.com", None, {"transport": "tcp"})),
        ("sips:alice@atlanta.com?subject=project%20x&priority=urgent",
         ("sips", "alice", None, "atlanta.com", None, {})),
        ("sip:+1-212-555-1212:1234@gateway.com;user=phone",
         ("sip", "+1-212-555-1212", "1234", "gateway.com", None, {"user": "phone"})),
        ("sip:atlanta.com;method=REGISTER?to=alice%40atlanta.com",
         ("sip", None, None, "atlanta.com", None, {"method": "REGISTER"})),
        ("sip:alice@[2001:db8::10]:5070;lr", ("sip", "alice", None, "[2001:db8::10]", 5070, {"lr": None})),
        ("SIP:Bob@192.0.2.4:5060", ("sip", "Bob", None, "192.0.2.4", 5060, {})),
        ("tel:+1-201-555-0123;phone-context=example.com",
         ("tel", "+1-201-555-0123", None, "", None, {"phone-context": "example.com"})),
    ],
)
def test_uri_forms(codec, text, fields) -> None:  # type: ignore[no-untyped-def]
    uri = codec.parse_uri(text)
    assert (uri.scheme, uri.user, uri.password, uri.host, uri.port, uri.params) == fields
    assert codec.parse_uri(str(uri)) == uri
    if not text.startswith("SIP:"):
        assert str(uri) == text


def test_other_schemes_are_opaque(codec) -> None:  # type: ignore[no-untyped-def]
    uri = codec.parse_uri("urn:service:sos")
    assert (uri.scheme, uri.opaque, str(uri)) == ("urn", "service:sos", "urn:service:sos")


@pytest.mark.parametrize(
    "text",
    ["sip:", "sip:alice@", "sip:a b@c", "sip:alice@host:99999", "<sip:a@b>", "sip:a@b;=x",
     "sip:a@%zz", "tel:", "nocolon", "sip:a@b?x"],
)
def test_bad_uris(codec, text: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SIPParseError) as info:
        codec.parse_uri(text, "Request-URI")
    assert info.value.status_code == 400 and info.value.field == "Request-URI"


def test_address_forms_round_trip(codec) -> None:  # type: ignore[no-untyped-def]
    a = codec.parse_address('"A \\"quoted\\" name" <sip:a@b;lr>;tag=xyz;q=0.7')
    assert a.display_name == 'A "quoted" name'
    assert a.uri.params == {"lr": None} and a.params == {"tag": "xyz", "q": "0.7"}
    assert codec.parse_address(str(a)) == a
    b = codec.parse_address("sip:a@b;tag=1")  # addr-spec: the params are the header's
    assert b.uri.params == {} and b.tag == "1"
    c = codec.parse_address("Anonymous <sip:c@d>")
    assert c.display_name == "Anonymous"
    assert str(c.with_tag("t1")) == '"Anonymous" <sip:c@d>;tag=t1' and c.tag is None


def test_via_forms(codec) -> None:  # type: ignore[no-untyped-def]
    v = codec.parse_via("SIP/2.0/tls [2001:db8::1]:5061;branch=z9hG4bKx;received=2001:db8::9;rport=4000")
    assert (v.transport, v.host, v.port, v.received, v.rport) == (
        "TLS", "[2001:db8::1]", 5061, "2001:db8::9", 4000)
    assert str(v) == "SIP/2.0/TLS [2001:db8::1]:5061;branch=z9hG4bKx;received=2001:db8::9;rport=4000"
    with pytest.raises(SIPParseError):
        codec.parse_via("SIP/2.0 host")


def test_building_messages_and_injection_guard(codec) -> None:  # type: ignore[no-untyped-def]
    req = codec.Request("OPTIONS", "sip:bob@example.com")
    req.headers.add("Via", codec.Via("UDP", "10.0.0.1", 5060, {"branch": "z9hG4bKabc"}))
    req.headers.add("From", codec.Address(codec.parse_uri("sip:a@example.com"), params={"tag": "1"}))
    req.headers.add("To", "<sip:bob@example.com>")
    req.headers.add("Call-ID", "xyz")
    req.headers.add("CSeq", codec.CSeq(1, "OPTIONS"))
    req.headers.add("Content-Length", "999")  # ignored: encode writes the real one
    req.body = b"ab"
    wire = req.encode()
    assert wire.count(b"Content-Length") == 1 and wire.endswith(b"Content-Length: 2\r\n\r\nab")
    assert codec.parse_message(wire).top_via.branch == "z9hG4bKabc"
    with pytest.raises(ValueError, match="value"):
        req.headers.add("Subject", "x\r\nVia: evil")
    with pytest.raises(ValueError, match="name"):
        req.headers.add("Bad Name", "x")
    with pytest.raises(ValueError, match="status_code"):
        codec.Response(42)
    req.headers.set("To", "<sip:carol@example.com>")
    assert req.headers.count("To") == 1 and [n for n, _ in req.headers][2] == "To"
    assert req.headers.remove("Call-ID") == 1 and "Call-ID" not in req.headers


# --- errors -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status", "field"),
    [
        (b"", 400, "header"),
        (b"INVITE sip:a@b SIP/2.0\r\n", 400, "header"),
        (crlf("INVITE sip:a@b SIP/2.0", "no colon here"), 400, "header"),
        (crlf("INVITE sip:a@b SIP/2.0", " folded first"), 400, "header"),
        (crlf("INVITE sip:a@b SIP/2.0", "Bad Name: x"), 400, "header"),
        (crlf("INVITE sip:a@b SIP/3.0"), 505, "start-line"),
        (crlf("SIP/2.0 20 OK"), 400, "start-line"),
        (crlf("SIP/2.0 200"), 400, "start-line"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 256"), 400, "Max-Forwards"),
        (INVITE.replace(b"Content-Length: 4", b"Content-Length: 4x"), 400, "Content-Length"),
        (INVITE.replace(b"Call-ID: a84", b"Call-ID: a 84"), 400, "Call-ID"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x000"), 400, None),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\r0"), 400, None),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\n0"), 400, None),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x7f0"), 400, None),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\r\r\n"), 400, None),
        (INVITE.replace(b"Max-Forwards: 70\r\n", b"Max-Forwards: 70\n\r\n"), 400, None),
        (INVITE.replace(b"Content-Type: application/sdp", b"Content-Type: sdp"), 400, "Content-Type"),
    ],
)
def test_malformed_messages(codec, data: bytes, status: int, field: str | None) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SIPParseError) as info:
        codec.parse_message(data)
    assert info.value.status_code == status
    if field is not None:
        assert info.value.field == field
    assert isinstance(info.value, ParseError) and isinstance(info.value, ValueError)


def test_escaped_control_character_in_quoted_string_is_accepted(codec) -> None:  # type: ignore[no-untyped-def]
    # quoted-pair may escape a control character (section 25.1): the quick
    # control-byte count sees it, the precise scan lets it through.
    data = INVITE.replace(b"Max-Forwards: 70", b'Max-Forwards: 70\r\nSubject: "a\\\x01b"')
    assert codec.parse_message(data).headers.get("Subject") == '"a\\\x01b"'


def test_error_offsets_point_at_the_line(codec) -> None:  # type: ignore[no-untyped-def]
    data = crlf("INVITE sip:a@b SIP/2.0", "Via: SIP/2.0/UDP h", "Bad Line")
    with pytest.raises(SIPParseError) as info:
        codec.parse_message(data)
    assert info.value.offset == data.index(b"Bad Line")
    # offsets count bytes, multi-byte UTF-8 and undecodable bytes included
    data = ("INVITE sip:a@b SIP/2.0\r\nSubject: d\u00e9j\u00e0 vu \U0001f600".encode()
            + b"\xff\r\nVia: SIP/2.0/UDP h\r\nBad Line\r\n\r\n")
    with pytest.raises(SIPParseError) as info:
        codec.parse_message(data)
    assert info.value.offset == data.index(b"Bad Line")


# --- limits -------------------------------------------------------------------


def test_limits(codec) -> None:  # type: ignore[no-untyped-def]
    small = codec.Limits(max_message_size=1024, max_body_size=10, max_header_count=12,
                         max_line_length=100)
    cases = [
        (INVITE + b"x" * 1024, 513, "message"),
        (INVITE.replace(b"Content-Length: 4\r\n\r\nv=0\n", b"Content-Length: 11\r\n\r\n" + b"y" * 11), 413, "body"),
        (INVITE.replace(b"Max-Forwards: 70", b"Max-Forwards: 70" + b"\r\nX-A: 1" * 5), 400, "header"),
        (INVITE.replace(b"Max-Forwards: 70", b"Subject: " + b"s" * 100), 400, "header"),
        (INVITE.replace(b"Max-Forwards: 70", b"Subject: " + b"s" * 60 + b"\r\n " + b"s" * 60), 400, "Subject"),
        # 50 characters but 100 bytes: the limit is in bytes
        (INVITE.replace(b"Max-Forwards: 70", b"Subject: " + "\u00e9".encode() * 46), 400, "header"),
    ]
    for data, status, field in cases:
        with pytest.raises(SIPLimitError) as info:
            codec.parse_message(data, small)
        assert (info.value.status_code, info.value.field) == (status, field)
        assert info.value.reason == codec.REASON_PHRASES[status]
    with pytest.raises(ValueError, match="max_body_size"):
        codec.Limits(max_body_size=0)


# --- stream framing (section 18.3) -------------------------------------------


def events_of(codec, chunks, limits=None):  # type: ignore[no-untyped-def]
    parser = codec.StreamParser(limits)
    out = []
    for chunk in chunks:
        for event in parser.feed(chunk):
            if isinstance(event, SIPParseError):
                out.append(("error", event.status_code, event.field))
            elif isinstance(event, codec.KeepAlive):
                out.append("ping")
            else:
                out.append(event.encode())
    return out, parser


def test_stream_back_to_back_messages_and_keepalives(codec) -> None:  # type: ignore[no-untyped-def]
    stream = b"\r\n\r\n" + INVITE + b"\r\n" + OK_200 + b"\r\n\r\n" + INVITE
    events, parser = events_of(codec, [stream])
    assert events == ["ping", INVITE, OK_200, "ping", INVITE]
    assert not parser.failed
    assert events_of(codec, [stream[i : i + 1] for i in range(len(stream))])[0] == events


def test_stream_requires_content_length_and_stops_after_an_error(codec) -> None:  # type: ignore[no-untyped-def]
    no_length = INVITE.replace(b"Content-Length: 4\r\n", b"")
    events, parser = events_of(codec, [OK_200 + no_length, INVITE])
    assert events == [OK_200, ("error", 400, "Content-Length")]
    assert parser.failed


def test_stream_limits_bound_the_buffer(codec) -> None:  # type: ignore[no-untyped-def]
    limits = codec.Limits(max_message_size=2000, max_body_size=100)
    endless_headers = b"INVITE sip:a@b SIP/2.0\r\n" + b"X-Junk: aaaaaaaaaa\r\n" * 1000
    events, parser = events_of(codec, [endless_headers[i : i + 100] for i in range(0, len(endless_headers), 100)], limits)
    assert events == [("error", 513, "header")]
    assert len(parser._buffer) == 0 if hasattr(parser, "_buffer") else True
    huge_body = INVITE.replace(b"Content-Length: 4", b"Content-Length: 1000000")
    assert events_of(codec, [huge_body], limits)[0] == [("error", 413, "body")]


# --- multipart ------------------------------------------------------------------


def test_multipart_round_trip(codec) -> None:  # type: ignore[no-untyped-def]
    sdp = codec.BodyPart(codec.Headers([("Content-Type", "application/sdp")]), b"v=0\r\n")
    isup = codec.BodyPart(
        codec.Headers([("Content-Type", "application/ISUP;version=nxv3"),
                       ("Content-Disposition", "signal;handling=optional")]),
        bytes(range(256)))
    body, content_type = codec.encode_multipart([sdp, isup], "unique-boundary-1")
    assert content_type == "multipart/mixed;boundary=unique-boundary-1"
    parts = codec.parse_multipart(b"preamble\r\n" + body + b"epilogue", content_type)
    assert parts == [sdp, isup]
    assert [p.content_type for p in parts] == ["application/sdp", "application/isup"]
    quoted = 'multipart/mixed; boundary="unique-boundary-1"'
    assert codec.parse_multipart(body, quoted) == [sdp, isup]
    with pytest.raises(SIPParseError):
        codec.parse_multipart(body[:-25], content_type)
    with pytest.raises(ValueError, match="boundary"):
        codec.encode_multipart([codec.BodyPart(body=b"--unique-boundary-1")], "unique-boundary-1")


# --- the session description in a body (RFC 5621) -----------------------------

SDP_A = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
SDP_B = SDP_A.replace(b"192.0.2.1", b"192.0.2.2")


def part(codec, content_type: str | None, body: bytes, *headers: tuple[str, str]):  # type: ignore[no-untyped-def]
    fields = [] if content_type is None else [("Content-Type", content_type)]
    return codec.BodyPart(codec.Headers([*fields, *headers]), body)


def multipart(codec, subtype: str, *parts, boundary: str = "b1", disposition: str | None = None):  # type: ignore[no-untyped-def]
    """A part (or, through ``.headers``/``.body``, a message) holding ``parts``."""
    body, content_type = codec.encode_multipart(list(parts), boundary, subtype)
    extra = [] if disposition is None else [("Content-Disposition", disposition)]
    return part(codec, content_type, body, *extra)


def optional(codec, content_type: str, body: bytes, disposition: str = "signal"):  # type: ignore[no-untyped-def]
    return part(codec, content_type, body, ("Content-Disposition", disposition + ";handling=optional"))


def test_session_description_of_a_plain_body(codec) -> None:  # type: ignore[no-untyped-def]
    assert codec.session_description(codec.parse_message(INVITE)) == b"v=0\n"
    assert codec.session_description(codec.parse_message(OK_200)) is None  # no body
    sdp = part(codec, "Application/SDP; charset=utf-8", SDP_A,
               ("Content-Disposition", "Session;Handling=Required"))
    assert codec.session_description(sdp) == SDP_A


def test_session_description_in_multipart_mixed_beside_optional_parts(codec) -> None:  # type: ignore[no-untyped-def]
    # SIP-I/SIP-T (RFC 3204): SDP next to the ISUP message, which may be ignored
    isup = optional(codec, "application/ISUP;version=itu-t92+", bytes(range(256)))
    location = optional(codec, "application/pidf+xml", b"<presence/>", "by-reference")
    body = multipart(codec, "mixed", part(codec, "application/sdp", SDP_A), isup, location)
    assert codec.session_description(body) == SDP_A
    # the same through a parsed message, as a UA gets it
    msg = codec.parse_message(INVITE)
    msg.headers.set("Content-Type", body.headers.get("Content-Type"))
    msg.body = body.body
    again = codec.parse_message(msg.encode())
    assert codec.session_description(again) == SDP_A


def test_a_required_part_we_cannot_use_is_415(codec) -> None:  # type: ignore[no-untyped-def]
    cases = [
        # ISUP without handling=optional: required by default (RFC 3261 section 20.11)
        multipart(codec, "mixed", part(codec, "application/sdp", SDP_A),
                  part(codec, "application/isup", b"\x01\x02")),
        part(codec, "text/html", b"<p>hi</p>"),
        part(codec, None, SDP_A),  # a body must say its type
        # encodings other than the identity ones are not for SIP (RFC 5621)
        part(codec, "application/sdp", SDP_A, ("Content-Transfer-Encoding", "base64")),
        # early-session (RFC 3959) is a disposition we do not implement
        part(codec, "application/sdp", SDP_A, ("Content-Disposition", "early-session")),
    ]
    for entity in cases:
        with pytest.raises(SIPError) as info:
            codec.session_description(entity)
        assert (info.value.status_code, info.value.reason) == (415, "Unsupported Media Type")
        assert not isinstance(info.value, SIPParseError)
    # the same, marked optional, are skipped: no session description
    assert codec.session_description(optional(codec, "text/html", b"<p>hi</p>", "render")) is None
    binary = part(codec, "application/sdp", SDP_A, ("Content-Transfer-Encoding", "Binary"))
    assert codec.session_description(binary) == SDP_A


def test_multipart_alternative_takes_the_last_part_we_can_use(codec) -> None:  # type: ignore[no-untyped-def]
    first, second = part(codec, "application/sdp", SDP_A), part(codec, "application/sdp", SDP_B)
    assert codec.session_description(multipart(codec, "alternative", first, second)) == SDP_B
    newer = part(codec, "application/sdpng", b"<sdpng/>")  # preferred, but unknown to us
    assert codec.session_description(multipart(codec, "alternative", first, newer)) == SDP_A
    with pytest.raises(SIPError) as info:
        codec.session_description(multipart(codec, "alternative", newer))
    assert info.value.status_code == 415
    # an alternative that is itself a mixed body with a required unknown part is unusable
    unusable = multipart(codec, "mixed", second, part(codec, "application/isup", b"x"),
                         boundary="inner")
    assert codec.session_description(multipart(codec, "alternative", first, unusable)) == SDP_A


def test_nested_multipart_and_its_limits(codec) -> None:  # type: ignore[no-untyped-def]
    inner = multipart(codec, "alternative", part(codec, "application/sdp", SDP_A),
                      boundary="inner")
    outer = multipart(codec, "mixed", optional(codec, "application/isup", b"x"), inner,
                      boundary="outer")
    assert codec.session_description(outer) == SDP_A
    two = multipart(codec, "mixed", part(codec, "application/sdp", SDP_A), inner,
                    boundary="outer")
    with pytest.raises(SIPParseError) as parse_info:
        codec.session_description(two)
    assert (parse_info.value.status_code, parse_info.value.field) == (400, "body")
    assert codec.session_description(multipart(codec, "mixed")) is None  # no parts at all
    # nesting deeper than any real body is refused with 400, not a RecursionError
    entity = part(codec, "application/sdp", SDP_A)
    for depth in range(12):
        entity = multipart(codec, "mixed", entity, boundary=f"level{depth}-")
    with pytest.raises(SIPParseError, match="nested"):
        codec.session_description(entity)
    broken = part(codec, "multipart/mixed;boundary=b1", b"--b1\r\nContent-Type: application/sdp\r\n")
    with pytest.raises(SIPParseError):
        codec.session_description(broken)
    with pytest.raises(SIPParseError) as parse_info:
        codec.session_description(part(codec, "application/sdp", SDP_A,
                                       ("Content-Disposition", ";handling=optional")))
    assert parse_info.value.field == "Content-Disposition"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300),
       content_type=st.sampled_from(["multipart/mixed;boundary=b1", "multipart/alternative;boundary=b1",
                                     "application/sdp", "multipart/related;boundary=\"b1\""]),
       fragments=st.lists(st.sampled_from([b"--b1\r\n", b"--b1--\r\n", b"\r\n",
                                           b"Content-Type: multipart/mixed;boundary=b1\r\n",
                                           b"Content-Type: application/sdp\r\n",
                                           b"Content-Disposition: x;handling=optional\r\n",
                                           b"v=0\r\n"]), max_size=12))
def test_session_description_of_any_body_is_bytes_none_or_sip_error(codec, body: bytes, content_type: str, fragments: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    entity = part(codec, content_type, b"".join(fragments) + body)
    try:
        found = codec.session_description(entity)
    except SIPError as exc:
        assert exc.status_code in (400, 415)
    else:
        assert found is None or isinstance(found, bytes)


# --- fuzzing --------------------------------------------------------------------

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [INVITE, OK_200]


@st.composite
def mutated_messages(draw):  # type: ignore[no-untyped-def]
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 6))):
        pos = draw(st.integers(0, len(data)))
        action = draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "insert":
            data[pos:pos] = draw(st.sampled_from(
                [b"\r\n", b" ", b",", b";", b"\"", b"<", b">", b":", b"\x00", b"\xff", b"%", b"@"]))
        elif pos < len(data):
            if action == "flip":
                data[pos] = draw(st.integers(0, 255))
            else:
                del data[pos]
    return bytes(data)


@FUZZ
@given(data=st.one_of(st.binary(max_size=300), mutated_messages()))
def test_fuzz_parse_or_parse_error(data: bytes) -> None:
    for _, codec in BUILDS:
        try:
            msg = codec.parse_message(data)
        except SIPParseError:
            continue
        # whatever parses serializes to something that parses the same way
        assert codec.parse_message(msg.encode()).encode() == msg.encode()


@FUZZ
@given(pieces=st.lists(st.one_of(st.sampled_from(SEEDS + [b"\r\n", b"\r\n\r\n"]), mutated_messages()),
                       max_size=4),
       cuts=st.lists(st.integers(0, 2000), max_size=8))
def test_fuzz_stream_chunking_does_not_matter(pieces: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(pieces)
    bounds = sorted({0, len(stream), *(c % (len(stream) + 1) for c in cuts)})
    chunks = [stream[a:b] for a, b in zip(bounds, bounds[1:])]
    for _, codec in BUILDS:
        whole = events_of(codec, [stream])[0]
        assert events_of(codec, chunks)[0] == whole
        assert events_of(codec, [stream[i : i + 1] for i in range(len(stream))])[0] == whole
