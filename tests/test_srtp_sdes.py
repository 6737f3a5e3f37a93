"""SDES (RFC 4568) crypto attributes: the RFC's examples, parse/format round
trips, generated keys, sessions built from attributes, and malformed lines."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rtpcore.errors import ParseError
from rtpcore.srtp import PROFILES, CryptoAttribute, SRTPSession, parse_crypto_attribute

RFC4568_KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"  # RFC 4568 section 4 and 9.2


@pytest.mark.parametrize(
    "line",
    [
        f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4",
        f"crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4\r\n",
        f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4",
        f"1  AES_CM_128_HMAC_SHA1_80\tinline:{RFC4568_KEY}|1048576|1:4",
    ],
)
def test_rfc4568_example_in_every_form(line: str) -> None:
    attr = parse_crypto_attribute(line)
    raw = base64.b64decode(RFC4568_KEY)
    assert attr == CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", raw[:16], raw[16:], 2**20, (1, 4))
    assert str(attr) == f"1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4"
    assert attr.mki_bytes == b"\x00\x00\x00\x01"


def test_session_parameters_and_optional_fields() -> None:
    attr = parse_crypto_attribute(
        "a=crypto:7 AEAD_AES_256_GCM inline:" + base64.b64encode(bytes(range(44))).decode() + " KDR=3 WSH=256 FEC_ORDER=FEC_SRTP"
    )
    assert (attr.tag, attr.lifetime, attr.mki) == (7, None, None)
    assert attr.key == bytes(range(32)) and attr.salt == bytes(range(32, 44))
    assert attr.session_params == ("KDR=3", "WSH=256", "FEC_ORDER=FEC_SRTP")
    session = attr.session()
    assert (session.key_derivation_rate, session.replay_window, session.mki) == (8, 256, None)
    assert attr.session(replay_window=1024).replay_window == 1024


def test_unpadded_base64_is_accepted() -> None:
    key_salt = base64.b64encode(bytes(46)).decode()
    assert key_salt.endswith("==")
    attr = parse_crypto_attribute(f"1 AES_256_CM_HMAC_SHA1_32 inline:{key_salt.rstrip('=')}")
    assert attr.key == bytes(32) and attr.salt == bytes(14)


@st.composite
def crypto_attributes(draw: st.DrawFn) -> CryptoAttribute:
    suite = draw(st.sampled_from(sorted(PROFILES)))
    key_len, salt_len = PROFILES[suite]
    mki_len = draw(st.integers(1, 128))
    return CryptoAttribute(
        tag=draw(st.integers(0, 999_999_999)),
        suite=suite,
        key=draw(st.binary(min_size=key_len, max_size=key_len)),
        salt=draw(st.binary(min_size=salt_len, max_size=salt_len)),
        lifetime=draw(st.none() | st.integers(1, 2**48) | st.integers(0, 48).map(lambda n: 2**n)),
        mki=draw(st.none() | st.tuples(st.integers(0, 256**mki_len - 1), st.just(mki_len))),
        session_params=tuple(draw(st.lists(st.sampled_from(["KDR=1", "WSH=512", "FEC_ORDER=FEC_SRTP", "X-VENDOR=1"]), max_size=3))),
    )


@given(crypto_attributes())
def test_round_trip(attr: CryptoAttribute) -> None:
    assert parse_crypto_attribute(str(attr)) == attr
    assert parse_crypto_attribute("a=crypto:" + str(attr)) == attr
    assert attr.key.hex() not in repr(attr)


@pytest.mark.parametrize("suite", sorted(PROFILES))
def test_generate_makes_fresh_working_keys(suite: str) -> None:
    offer = CryptoAttribute.generate(1, suite, mki=(2, 1))
    assert (len(offer.key), len(offer.salt)) == PROFILES[suite]
    assert offer != CryptoAttribute.generate(1, suite, mki=(2, 1))
    # What the peer parses from our SDP decrypts what we send.
    sender, receiver = offer.session(), parse_crypto_attribute(f"a=crypto:{offer}\r\n").session()
    assert isinstance(sender, SRTPSession) and sender.profile == suite and sender.mki == b"\x02"
    packet = bytes([0x80, 0]) + (1).to_bytes(2, "big") + bytes(8) + b"hello"
    assert receiver.unprotect(sender.protect(packet)) == packet


@pytest.mark.parametrize(
    ("line", "field", "offset"),
    [
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:!!notbase64!!", "key-salt", 42),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:" + base64.b64encode(bytes(29)).decode(), "key-salt", 42),
        ("a=crypto:1 AEAD_AES_128_GCM inline:" + base64.b64encode(bytes(30)).decode(), "key-salt", 35),
        ("a=crypto:1 F8_128_HMAC_SHA1_80 inline:" + RFC4568_KEY, "crypto-suite", 11),
        ("a=crypto:x1 AES_CM_128_HMAC_SHA1_80 inline:" + RFC4568_KEY, "tag", 9),
        ("a=crypto:1234567890 AES_CM_128_HMAC_SHA1_80 inline:" + RFC4568_KEY, "tag", 9),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4;inline:{RFC4568_KEY}|2^20|2:4", "key-params", 91),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 uri:{RFC4568_KEY}", "key-params", 35),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^x", "lifetime", 83),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|0", "lifetime", 83),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|1:4|2^20", "lifetime", 87),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|1:200", "mki", 83),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|256:1", "mki", 83),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|1:1|2:1", "mki", 87),
        (f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{RFC4568_KEY}|2^20|1:4|x", "key-info", 42),
        ("a=crypto:1 AES_CM_128_HMAC_SHA1_80", "key-params", 34),
        ("", "key-params", 0),
    ],
)
def test_malformed_lines(line: str, field: str, offset: int) -> None:
    with pytest.raises(ParseError) as raised:
        parse_crypto_attribute(line)
    assert (raised.value.layer, raised.value.field, raised.value.offset) == ("sdp", field, offset)


def test_unsupported_session_parameters_refuse_a_session() -> None:
    attr = CryptoAttribute.generate(1, "AES_CM_128_HMAC_SHA1_80", session_params=("UNENCRYPTED_SRTCP",))
    assert parse_crypto_attribute(str(attr)) == attr  # parsing is fine ...
    with pytest.raises(ValueError, match="UNENCRYPTED_SRTCP"):
        attr.session()  # ... but no session can honour it
    with pytest.raises(ValueError, match="KDR"):
        dataclasses.replace(attr, session_params=("KDR=25",)).session()


def test_invalid_fields_are_refused() -> None:
    with pytest.raises(ValueError, match="suite"):
        CryptoAttribute.generate(1, "AES_CM_128_NULL_AUTH")
    with pytest.raises(ValueError, match="key"):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", bytes(15), bytes(14))
    with pytest.raises(ValueError, match="mki"):
        CryptoAttribute(1, "AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14), mki=(256, 1))
    with pytest.raises(TypeError):
        parse_crypto_attribute(b"1 AES_CM_128_HMAC_SHA1_80 inline:x")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        CryptoAttribute.generate(1, "AEAD_AES_128_GCM").tag = 2  # type: ignore[misc]
