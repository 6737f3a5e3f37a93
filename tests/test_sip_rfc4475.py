"""RFC 4475 torture messages through both codec builds.

Valid messages parse (and survive a serialize/parse round trip); invalid ones
are rejected with the status code the RFC says an element should answer with
and the field at fault.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rtpcore.errors import SIPError, SIPParseError
from sip_support import codec_builds

DATA = Path(__file__).parent / "data" / "rfc4475"

# file -> None (parses) or (status code, field named by the error)
EXPECTED: dict[str, tuple[int, str] | None] = {
    # 3.1.1 valid
    "wsinv.dat": None,
    "intmeth.dat": None,
    "esc01.dat": None,
    "escnull.dat": None,
    "esc02.dat": None,
    "lwsdisp.dat": None,
    "longreq.dat": None,
    "dblreq.dat": None,
    "semiuri.dat": None,
    "transports.dat": None,
    "mpart01.dat": None,
    "unreason.dat": None,
    "noreason.dat": None,
    # 3.1.2 invalid
    "badinv01.dat": (400, "Via"),
    "clerr.dat": (400, "Content-Length"),
    "ncl.dat": (400, "Content-Length"),
    "scalar02.dat": (400, "CSeq"),
    "scalarlg.dat": (400, "CSeq"),
    "quotbal.dat": (400, "To"),
    "ltgtruri.dat": (400, "Request-URI"),
    "lwsruri.dat": (400, "start-line"),
    "lwsstart.dat": (400, "start-line"),
    "trws.dat": (400, "start-line"),
    "escruri.dat": (400, "Request-URI"),
    "baddate.dat": (400, "Date"),
    "regbadct.dat": (400, "Contact"),
    "badaspec.dat": (400, "To"),
    "baddn.dat": (400, "From"),
    "badvers.dat": (505, "start-line"),
    "mismatch01.dat": (400, "CSeq"),
    "mismatch02.dat": (400, "CSeq"),
    "bigcode.dat": (400, "start-line"),
    # 3.2 - 3.4
    "badbranch.dat": None,
    "insuf.dat": (400, "From"),
    "unkscm.dat": None,
    "novelsc.dat": None,
    "unksm2.dat": None,
    "mcl01.dat": (400, "Content-Length"),
    "multi01.dat": (400, "Call-ID"),
    "bcast.dat": None,
    "zeromf.dat": None,
    "inv2543.dat": None,
}

BUILDS = codec_builds()


@pytest.fixture(params=BUILDS, ids=[name for name, _ in BUILDS])
def codec(request):  # type: ignore[no-untyped-def]
    return request.param[1]


def test_every_file_has_an_expectation() -> None:
    assert sorted(p.name for p in DATA.glob("*.dat")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message(codec, name: str) -> None:  # type: ignore[no-untyped-def]
    data = (DATA / name).read_bytes()
    expected = EXPECTED[name]
    if expected is None:
        msg = codec.parse_message(data)
        declared = msg.headers.get("Content-Length")
        if declared is not None:
            assert len(msg.body) == int(declared)
        # Serializing is a fixed point after one pass (Content-Length is
        # rewritten last, compact names expanded, folding undone) and keeps
        # every other field, in order.
        again = codec.parse_message(msg.encode())
        assert again.encode() == msg.encode()
        assert again.body == msg.body
        without_length = [item for item in msg.headers if item[0] != "Content-Length"]
        assert [item for item in again.headers if item[0] != "Content-Length"] == without_length
    else:
        with pytest.raises(SIPParseError) as info:
            codec.parse_message(data)
        assert (info.value.status_code, info.value.field) == expected
        assert info.value.layer == "sip"


def test_wsinv_fields(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "wsinv.dat").read_bytes())
    assert msg.method == "INVITE"
    assert str(msg.uri) == "sip:vivekg@chair-dnrc.example.com;unknownparam"
    assert msg.to.tag == "1918181833n"
    assert str(msg.to.uri) == "sip:vivekg@chair-dnrc.example.com"
    assert msg.from_.display_name == 'J Rosenberg \\"'
    assert msg.from_.tag == "98asjd8"
    assert msg.max_forwards == 68
    assert (msg.cseq.seq, msg.cseq.method) == (9, "INVITE")
    assert [(v.transport, v.host, v.branch) for v in msg.vias] == [
        ("UDP", "192.0.2.2", "390skdjuw"),
        ("TCP", "spindle.example.com", "z9hG4bK9ikj8"),
        ("UDP", "192.168.255.111", "z9hG4bK30239"),
    ]
    (contact,) = msg.contacts
    assert contact.display_name == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert msg.headers.get("NewFangledHeader") == "newfangled value continued newfangled value"
    assert msg.headers.get("UnknownHeaderWithUnusualValue") == ";;,,;;,;"
    assert msg.headers.get("Subject") == ""
    assert msg.routes[0].uri.params == {"lr": None, "unknownwith": "value", "unknown-no-value": None}
    assert msg.body.startswith(b"v=0\r\n") and len(msg.body) == 150


def test_intmeth_fields(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "intmeth.dat").read_bytes())
    assert msg.method == "!interesting-Method0123456789_*+`.%indeed'~"
    assert msg.uri.user == "1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"
    assert msg.uri.password == "&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"
    assert msg.to.display_name == "BEL:\x07 NUL:\x00 DEL:\x7f"
    assert msg.from_.display_name == "token1~` token2'+_ token3*%!.-"
    assert msg.from_.params["fromparam''~+*_!.-%"] == '"работающий"'
    assert msg.headers.get("extensionHeader-!.%*+_`'~") == "\ufeff大停電"
    assert msg.call_id == "intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"


def test_mpart01_parts(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "mpart01.dat").read_bytes())
    assert msg.method == "MESSAGE" and len(msg.body) == 553
    text, signature = codec.parse_multipart(msg.body, msg.headers.get("Content-Type"))
    assert (text.content_type, text.body) == ("text/plain", b"Hello")
    assert signature.content_type == "application/octet-stream"
    assert signature.headers.get("Content-Transfer-Encoding") == "binary"
    # a DER SEQUENCE with a two-octet length: the whole S/MIME signature, NULs and all
    assert len(signature.body) == 342 and signature.body[:4] == b"\x30\x82\x01\x52"
    assert b"\x00" in signature.body
    # no SDP in it, and its text and signature are required parts (no
    # Content-Disposition): a UA that cannot render them answers 415
    with pytest.raises(SIPError) as info:
        codec.session_description(msg)
    assert info.value.status_code == 415


def test_dblreq_drops_trailing_octets(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "dblreq.dat").read_bytes())
    assert msg.method == "REGISTER" and msg.body == b""


def test_esc02_header_name_with_escape_is_not_contact(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "esc02.dat").read_bytes())
    assert [str(c.uri) for c in msg.contacts] == [
        "sip:alias1@host1.example.com",
        "sip:alias3@host3.example.com",
    ]
    assert msg.headers.get("C%6Fntact") == "<sip:alias2@host2.example.com>"


def test_semiuri_user_part(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "semiuri.dat").read_bytes())
    assert msg.uri.user == "user;par=u%40example.net"
    assert msg.uri.host == "example.com"
    assert msg.headers.get_all("Accept") == [
        "application/sdp", "application/pkcs7-mime", "multipart/mixed",
        "multipart/signed", "message/sip", "message/sipfrag",
    ]


def test_longreq_compact_and_case_variants_of_via(codec) -> None:  # type: ignore[no-untyped-def]
    msg = codec.parse_message((DATA / "longreq.dat").read_bytes())
    hosts = [v.host for v in msg.vias]
    assert hosts[:2] == ["sip33.example.com", "sip32.example.com"]
    assert len(hosts) == 34 and hosts[-1] == "host.example.com"
    assert msg.vias[-1].received == "192.0.2.5"


def test_builds_agree_on_every_file() -> None:
    if len(BUILDS) < 2:
        pytest.skip("only one build available (extensions off)")
    (_, pure), (_, compiled) = BUILDS
    for path in sorted(DATA.glob("*.dat")):
        data = path.read_bytes()
        outcomes = []
        for build in (pure, compiled):
            try:
                outcomes.append(build.parse_message(data).encode())
            except SIPParseError as exc:
                outcomes.append((exc.status_code, exc.field, exc.offset, str(exc)))
        assert outcomes[0] == outcomes[1], path.name
