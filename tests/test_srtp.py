"""SRTPSession behaviour: all six profiles against an independent reference
(RFC 3711 / RFC 7714 written here over the `cryptography` package), MKI,
key derivation rate, unencrypted SRTCP, ROC, bad input, buffer types, and
Hypothesis state tests of the replay window and the ROC estimate."""

from __future__ import annotations

import hashlib
import hmac
import pickle
import random
from typing import Any

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import AuthenticationError, ParseError, ReplayError, RtpcoreError, SRTPError
from rtpcore.srtp import PROFILES, SRTPSession

# name: (RTP tag, RTCP tag, AEAD)
TRANSFORMS = {
    "AES_CM_128_HMAC_SHA1_80": (10, 10, False),
    "AES_CM_128_HMAC_SHA1_32": (4, 10, False),
    "AES_256_CM_HMAC_SHA1_80": (10, 10, False),
    "AES_256_CM_HMAC_SHA1_32": (4, 10, False),
    "AEAD_AES_128_GCM": (16, 16, True),
    "AEAD_AES_256_GCM": (16, 16, True),
}
ALL_PROFILES = list(TRANSFORMS)
SSRC = 0x5A3C01E0


# --- an independent reference: RFC 3711 / RFC 6188 / RFC 7714 in Python ------


def _aes_ctr(key: bytes, iv: int, data: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.CTR(iv.to_bytes(16, "big"))).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def ref_kdf(key: bytes, salt: bytes, label: int, r: int, length: int) -> bytes:
    x = int.from_bytes(salt.ljust(14, b"\0"), "big") ^ (label << 48 | r)
    return _aes_ctr(key, x << 16, bytes(length))


def ref_keys(profile: str, key: bytes, salt: bytes, rtcp: bool, r: int) -> tuple[bytes, bytes, int]:
    """(cipher key, auth key, salt as int) for SRTP or SRTCP at r."""
    key_len, salt_len = PROFILES[profile]
    label = 3 if rtcp else 0
    return (
        ref_kdf(key, salt, label, r, key_len),
        ref_kdf(key, salt, label + 1, r, 20),
        int.from_bytes(ref_kdf(key, salt, label + 2, r, salt_len), "big"),
    )


def rtp_header_len(packet: bytes) -> int:
    length = 12 + 4 * (packet[0] & 0x0F)
    if packet[0] & 0x10:
        length += 4 + 4 * int.from_bytes(packet[length + 2 : length + 4], "big")
    return length


def ref_protect_rtp(profile: str, key: bytes, salt: bytes, packet: bytes, roc: int, kdr: int = 0, mki: bytes = b"") -> bytes:
    rtp_tag, _, aead = TRANSFORMS[profile]
    h = rtp_header_len(packet)
    seq, ssrc = int.from_bytes(packet[2:4], "big"), int.from_bytes(packet[8:12], "big")
    index = roc << 16 | seq
    cipher_key, auth_key, session_salt = ref_keys(profile, key, salt, False, index // kdr if kdr else 0)
    if aead:
        iv = (session_salt ^ (ssrc << 48 | index)).to_bytes(12, "big")
        return packet[:h] + AESGCM(cipher_key).encrypt(iv, packet[h:], packet[:h]) + mki
    iv = (session_salt << 16) ^ (ssrc << 64) ^ (index << 16)
    body = packet[:h] + _aes_ctr(cipher_key, iv, packet[h:])
    tag = hmac.new(auth_key, body + roc.to_bytes(4, "big"), hashlib.sha1).digest()[:rtp_tag]
    return body + mki + tag


def ref_protect_rtcp(
    profile: str, key: bytes, salt: bytes, packet: bytes, index: int, *, encrypt: bool = True, kdr: int = 0, mki: bytes = b""
) -> bytes:
    _, rtcp_tag, aead = TRANSFORMS[profile]
    ssrc = int.from_bytes(packet[4:8], "big")
    cipher_key, auth_key, session_salt = ref_keys(profile, key, salt, True, index // kdr if kdr else 0)
    e_index = ((0x8000_0000 if encrypt else 0) | index).to_bytes(4, "big")
    if aead:
        iv = (session_salt ^ (ssrc << 48 | index)).to_bytes(12, "big")
        if encrypt:
            sealed = AESGCM(cipher_key).encrypt(iv, packet[8:], packet[:8] + e_index)
            return packet[:8] + sealed + e_index + mki
        return packet + AESGCM(cipher_key).encrypt(iv, b"", packet + e_index) + e_index + mki
    iv = (session_salt << 16) ^ (ssrc << 64) ^ (index << 16)
    body = packet[:8] + (_aes_ctr(cipher_key, iv, packet[8:]) if encrypt else packet[8:])
    return body + e_index + mki + hmac.new(auth_key, body + e_index, hashlib.sha1).digest()[:rtcp_tag]


# --- packet builders -----------------------------------------------------------


def rtp_packet(seq: int, payload: bytes = b"\x55" * 160, *, csrcs: int = 0, extension: bytes | None = None, ssrc: int = SSRC) -> bytes:
    first = 0x80 | (0x10 if extension is not None else 0) | csrcs
    header = bytes([first, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big")
    header += b"".join((0x1000 + i).to_bytes(4, "big") for i in range(csrcs))
    if extension is not None:
        header += b"\xbe\xde" + (len(extension) // 4).to_bytes(2, "big") + extension
    return header + payload


def rtcp_packet(ssrc: int = SSRC, body: bytes = b"\x11" * 20) -> bytes:
    # An RR with one report block's worth of bytes; SRTP does not look inside.
    words = (8 + len(body)) // 4 - 1
    return bytes([0x81, 201]) + words.to_bytes(2, "big") + ssrc.to_bytes(4, "big") + body


def keys(profile: str, seed: int = 1) -> tuple[bytes, bytes]:
    rng = random.Random(seed)
    key_len, salt_len = PROFILES[profile]
    return rng.randbytes(key_len), rng.randbytes(salt_len)


def pair(profile: str, **kw: Any) -> tuple[SRTPSession, SRTPSession]:
    key, salt = keys(profile)
    return SRTPSession(profile, key, salt, **kw), SRTPSession(profile, key, salt, **kw)


# --- against the reference --------------------------------------------------------


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_rtp_matches_reference_across_rollover(profile: str) -> None:
    rng = random.Random(profile)
    key, salt = keys(profile)
    sender, receiver = pair(profile)
    for n, seq in enumerate([65533, 65534, 65535, 0, 1, 2, 900]):
        roc = 0 if seq > 60000 else 1
        packet = rtp_packet(
            seq,
            rng.randbytes(rng.choice([0, 1, 17, 160, 1400])),
            csrcs=n % 3,
            extension=rng.randbytes(4 * (n % 3)) if n % 2 else None,
        )
        protected = sender.protect(packet)
        assert protected == ref_protect_rtp(profile, key, salt, packet, roc)
        assert len(protected) == len(packet) + sender.rtp_overhead
        assert receiver.unprotect(protected) == packet
        assert sender.roc(SSRC) == receiver.roc(SSRC) == roc


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_rtcp_matches_reference(profile: str) -> None:
    key, salt = keys(profile)
    sender, receiver = pair(profile)  # RFC 3711: the first SRTCP index is 0
    for index in range(3):
        packet = rtcp_packet(body=bytes([index]) * 24)
        protected = sender.protect_rtcp(packet)
        assert protected == ref_protect_rtcp(profile, key, salt, packet, index)
        assert len(protected) == len(packet) + sender.rtcp_overhead
        assert receiver.unprotect_rtcp(protected) == packet


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_unencrypted_srtcp_is_accepted(profile: str) -> None:
    key, salt = keys(profile)
    _, receiver = pair(profile)
    packet = rtcp_packet()
    assert receiver.unprotect_rtcp(ref_protect_rtcp(profile, key, salt, packet, 7, encrypt=False)) == packet
    forged = bytearray(ref_protect_rtcp(profile, key, salt, packet, 8, encrypt=False))
    forged[9] ^= 1  # the clear payload is authenticated too
    with pytest.raises(AuthenticationError):
        receiver.unprotect_rtcp(bytes(forged))


@pytest.mark.parametrize("profile", ALL_PROFILES)
def test_mki(profile: str) -> None:
    key, salt = keys(profile)
    mki = b"\x00\x00\x01\x02"
    sender, receiver = pair(profile, mki=mki)
    assert sender.mki == mki and sender.rtp_overhead == TRANSFORMS[profile][0] + 4
    packet, rtcp = rtp_packet(10), rtcp_packet()
    protected = sender.protect(packet)
    assert protected == ref_protect_rtp(profile, key, salt, packet, 0, mki=mki)
    assert sender.protect_rtcp(rtcp) == ref_protect_rtcp(profile, key, salt, rtcp, 0, mki=mki)
    assert receiver.unprotect(protected) == packet
    other = SRTPSession(profile, key, salt, mki=b"\x00\x00\x01\x03")
    with pytest.raises(AuthenticationError, match="MKI"):
        other.unprotect(sender.protect(rtp_packet(11)))
    with pytest.raises(AuthenticationError, match="MKI"):
        other.unprotect_rtcp(sender.protect_rtcp(rtcp))
    assert SRTPSession(profile, key, salt).rtp_overhead == TRANSFORMS[profile][0]


@pytest.mark.parametrize("profile", ALL_PROFILES)
@pytest.mark.parametrize("kdr", [1, 2**4])
def test_key_derivation_rate(profile: str, kdr: int) -> None:
    key, salt = keys(profile)
    sender, receiver = pair(profile, key_derivation_rate=kdr)
    for seq in range(65530, 65536 + 40):
        packet = rtp_packet(seq & 0xFFFF)
        protected = sender.protect(packet)
        assert protected == ref_protect_rtp(profile, key, salt, packet, seq >> 16, kdr=kdr)
        assert receiver.unprotect(protected) == packet
    for index in range(20):
        rtcp = rtcp_packet()
        protected = sender.protect_rtcp(rtcp)
        assert protected == ref_protect_rtcp(profile, key, salt, rtcp, index, kdr=kdr)
        assert receiver.unprotect_rtcp(protected) == rtcp
    # Re-ordering back across a derivation boundary still authenticates.
    late = SRTPSession(profile, key, salt, key_derivation_rate=kdr)
    early, later = rtp_packet(31), rtp_packet(33)
    assert late.unprotect(ref_protect_rtp(profile, key, salt, later, 0, kdr=kdr)) == later
    assert late.unprotect(ref_protect_rtp(profile, key, salt, early, 0, kdr=kdr)) == early


def test_srtcp_first_index() -> None:
    profile = "AES_CM_128_HMAC_SHA1_80"
    key, salt = keys(profile)
    sender = SRTPSession(profile, key, salt, srtcp_first_index=1)
    assert sender.srtcp_first_index == 1
    assert sender.protect_rtcp(rtcp_packet()) == ref_protect_rtcp(profile, key, salt, rtcp_packet(), 1)


# --- ROC -------------------------------------------------------------------------


def test_set_roc_lets_a_late_receiver_join() -> None:
    profile = "AES_CM_128_HMAC_SHA1_80"
    sender, receiver = pair(profile)
    sender.set_roc(SSRC, 5)
    assert sender.roc(SSRC) == 5
    protected = sender.protect(rtp_packet(100))
    # Without the ROC the receiver guesses 0 and the tag cannot match ...
    with pytest.raises(AuthenticationError):
        receiver.unprotect(protected)
    assert receiver.roc(SSRC) == 0
    # ... with it, the packet and its successors decrypt.
    receiver.set_roc(SSRC, 5)
    assert receiver.unprotect(protected) == rtp_packet(100)
    assert receiver.unprotect(sender.protect(rtp_packet(101))) == rtp_packet(101)
    assert receiver.roc(SSRC) == 5
    assert receiver.roc(0x1234) == 0  # an SSRC never seen


def test_rocs_are_per_ssrc() -> None:
    sender, receiver = pair("AEAD_AES_128_GCM")
    for seq in (65535, 0):
        for ssrc in (1, 2):
            receiver.unprotect(sender.protect(rtp_packet(seq, ssrc=ssrc)))
    receiver.unprotect(sender.protect(rtp_packet(65535, ssrc=3)))
    assert [receiver.roc(s) for s in (1, 2, 3)] == [1, 1, 0]


@settings(max_examples=40, deadline=None)
@given(gaps=st.lists(st.integers(1, 32767), min_size=1, max_size=30), start=st.integers(0, 65535))
def test_roc_follows_long_runs_across_rollovers(gaps: list[int], start: int) -> None:
    sender, receiver = pair("AES_CM_128_HMAC_SHA1_32")
    index = start
    for gap in [0, *gaps]:
        index += gap
        packet = rtp_packet(index & 0xFFFF, b"x")
        assert receiver.unprotect(sender.protect(packet)) == packet
        assert sender.roc(SSRC) == receiver.roc(SSRC) == index >> 16


# --- the replay window as a state machine --------------------------------------------

REPLAY_BASE = 65536 - 50  # the stream crosses a roll-over
REPLAY_SPAN = 400


def _protected_run(profile: str) -> list[bytes]:
    sender, _ = pair(profile)
    return [sender.protect(rtp_packet((REPLAY_BASE + k) & 0xFFFF, k.to_bytes(2, "big"))) for k in range(REPLAY_SPAN)]


PROTECTED_RUN = {profile: _protected_run(profile) for profile in ("AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM")}


@settings(max_examples=150, deadline=None)
@given(
    profile=st.sampled_from(sorted(PROTECTED_RUN)),
    window=st.sampled_from([64, 128, 256]),
    arrivals=st.lists(st.tuples(st.integers(0, REPLAY_SPAN - 1), st.booleans()), max_size=80),
)
def test_replay_window_model(profile: str, window: int, arrivals: list[tuple[int, bool]]) -> None:
    """Any order of arrivals, with duplicates and forgeries: the session
    agrees with a model of RFC 3711 section 3.3.2, and a forged packet never
    changes what a later packet gets."""
    _, receiver = pair(profile, replay_window=window)
    run = PROTECTED_RUN[profile]
    received = {0}
    highest = 0
    receiver.unprotect(run[0])  # the stream starts at its first packet
    for k, forged in arrivals:
        packet = bytearray(run[k])
        if forged:
            packet[-1] ^= 0x01
        if k <= highest and highest - k >= window:
            expected: type[RtpcoreError] | None = ReplayError
        elif k in received:
            expected = ReplayError
        elif forged:
            expected = AuthenticationError
        else:
            expected = None
        if expected is None:
            assert receiver.unprotect(packet) == rtp_packet((REPLAY_BASE + k) & 0xFFFF, k.to_bytes(2, "big"))
            received.add(k)
            highest = max(highest, k)
        else:
            with pytest.raises(expected) as raised:
                receiver.unprotect(packet)
            if isinstance(raised.value, ReplayError):
                assert raised.value.index == REPLAY_BASE + k
                assert raised.value.reason == ("duplicate" if k in received and highest - k < window else "too old")
        assert receiver.roc(SSRC) == (REPLAY_BASE + highest) >> 16


# --- bad input ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "packet", "layer", "field"),
    [
        ("unprotect", b"", "rtp", "header"),
        ("unprotect", b"\x80\x00\x00\x01", "rtp", "header"),
        ("unprotect", b"\x40" + bytes(30), "rtp", "version"),
        ("unprotect", rtp_packet(1, b"")[:12] + b"\x00" * 9, "srtp", "auth tag"),
        ("unprotect", rtp_packet(1, b"", csrcs=3)[:20], "rtp", "csrc"),
        ("protect", b"\x90" + bytes(11) + b"\xbe\xde\x00\x09", "rtp", "extension length"),
        ("unprotect_rtcp", b"\x81\xc9\x00", "rtcp", "header"),
        ("unprotect_rtcp", b"\x01\xc9" + bytes(40), "rtcp", "version"),
        ("unprotect_rtcp", rtcp_packet(body=b"") + bytes(13), "srtp", "srtcp index"),
        ("protect_rtcp", b"\x81\xc9\x00\x01\x00", "rtcp", "header"),
    ],
)
def test_malformed_packets_raise_parse_error(method: str, packet: bytes, layer: str, field: str) -> None:
    session = SRTPSession("AES_CM_128_HMAC_SHA1_80", *keys("AES_CM_128_HMAC_SHA1_80"))
    with pytest.raises(ParseError) as raised:
        getattr(session, method)(packet)
    assert (raised.value.layer, raised.value.field) == (layer, field)
    assert raised.value.offset is not None


@settings(max_examples=300, deadline=None)
@given(profile=st.sampled_from(ALL_PROFILES), data=st.binary(max_size=200), rtcp=st.booleans())
def test_garbage_never_crashes(profile: str, data: bytes, rtcp: bool) -> None:
    _, receiver = pair(profile)
    unprotect = receiver.unprotect_rtcp if rtcp else receiver.unprotect
    with pytest.raises((ParseError, AuthenticationError)):
        unprotect(data)


@settings(max_examples=100, deadline=None)
@given(profile=st.sampled_from(ALL_PROFILES), position=st.integers(0, 10_000), bit=st.integers(0, 7))
def test_any_flipped_bit_fails_authentication_or_parsing(profile: str, position: int, bit: int) -> None:
    sender, receiver = pair(profile)
    protected = bytearray(sender.protect(rtp_packet(7, b"abc" * 20, csrcs=1, extension=b"\x10\xaa\x00\x00")))
    protected[position % len(protected)] ^= 1 << bit
    with pytest.raises((ParseError, AuthenticationError)):
        receiver.unprotect(bytes(protected))


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)])
def test_any_buffer_type(kind: Any) -> None:
    sender_a, receiver = pair("AES_CM_128_HMAC_SHA1_80")
    sender_b, _ = pair("AES_CM_128_HMAC_SHA1_80")
    packet = rtp_packet(3)
    protected = sender_a.protect(kind(packet))
    assert protected == sender_b.protect(packet)
    assert receiver.unprotect(kind(protected)) == packet
    assert receiver.unprotect_batch([kind(sender_a.protect(rtp_packet(4)))]) == [rtp_packet(4)]


def test_non_buffers_raise_type_error() -> None:
    session = SRTPSession("AES_CM_128_HMAC_SHA1_80", *keys("AES_CM_128_HMAC_SHA1_80"))
    with pytest.raises(TypeError, match="rtp"):
        session.protect("not bytes")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="packets"):
        session.protect_batch([rtp_packet(1), 3])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        session.unprotect_batch(5)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "kw", "argument"),
    [
        (("AES_CM_128_HMAC_SHA1_81", bytes(16), bytes(14)), {}, "profile"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(15), bytes(14)), {}, "master_key"),
        (("AEAD_AES_256_GCM", bytes(32), bytes(14)), {}, "master_salt"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"replay_window": 63}, "replay_window"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"replay_window": 2**15 + 1}, "replay_window"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"replay_window": -1}, "replay_window"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"key_derivation_rate": 3}, "key_derivation_rate"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"key_derivation_rate": 2**25}, "key_derivation_rate"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"srtcp_first_index": 2**31}, "srtcp_first_index"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"mki": b""}, "mki"),
        (("AES_CM_128_HMAC_SHA1_80", bytes(16), bytes(14)), {"mki": bytes(129)}, "mki"),
    ],
)
def test_bad_parameters(args: tuple[Any, ...], kw: dict[str, Any], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        SRTPSession(*args, **kw)


def test_largest_replay_window_and_dtls_names() -> None:
    sender, receiver = pair("AES_CM_128_HMAC_SHA1_80", replay_window=2**15)
    assert receiver.replay_window == 2**15
    late = sender.protect(rtp_packet(1))
    receiver.unprotect(sender.protect(rtp_packet(30000)))
    assert receiver.unprotect(late) == rtp_packet(1)  # 29999 behind, inside 2^15
    session = SRTPSession("SRTP_AEAD_AES_128_GCM", bytes(16), bytes(12))
    assert session.profile == "AEAD_AES_128_GCM"
    assert "key" not in repr(session).lower().replace("key_derivation", "")


def test_errors_pickle_and_share_a_base() -> None:
    sender, receiver = pair("AES_CM_128_HMAC_SHA1_80")
    protected = sender.protect(rtp_packet(9))
    receiver.unprotect(protected)
    with pytest.raises(ReplayError) as raised:
        receiver.unprotect(protected)
    copy = pickle.loads(pickle.dumps(raised.value))
    assert (copy.index, copy.reason, str(copy)) == (9, "duplicate", str(raised.value))
    assert issubclass(AuthenticationError, SRTPError) and issubclass(ReplayError, SRTPError)
    assert issubclass(SRTPError, RtpcoreError)


def test_batch_keeps_good_packets_around_bad_ones() -> None:
    sender, receiver = pair("AEAD_AES_256_GCM")
    packets = [sender.protect(rtp_packet(seq)) for seq in range(5)]
    results = receiver.unprotect_batch([packets[0], b"junk", packets[1], packets[1], packets[2][:-1] + b"\x00", packets[3]])
    assert results[0] == rtp_packet(0) and results[2] == rtp_packet(1) and results[5] == rtp_packet(3)
    assert isinstance(results[1], ParseError)
    assert isinstance(results[3], ReplayError) and results[3].reason == "duplicate"
    assert isinstance(results[4], AuthenticationError)
    # the forged packet 2 did not enter the window: the real one still does
    assert receiver.unprotect(packets[2]) == rtp_packet(2)
    assert sender.protect_batch([]) == []


def test_batches_in_parallel_threads() -> None:
    """The batch forms run without the GIL: sessions used from several
    threads at once each get their own packets back intact."""
    from concurrent.futures import ThreadPoolExecutor

    def one_call(ssrc: int) -> bool:
        sender, receiver = pair("AEAD_AES_128_GCM")
        packets = [rtp_packet(seq, bytes([seq % 256]) * 900, ssrc=ssrc) for seq in range(200)]
        return receiver.unprotect_batch(sender.protect_batch(packets)) == packets

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(one_call, range(8)))


def test_allow_repeat_tx() -> None:
    strict, _ = pair("AES_CM_128_HMAC_SHA1_80")
    lenient, receiver = pair("AES_CM_128_HMAC_SHA1_80", allow_repeat_tx=True)
    assert (strict.allow_repeat_tx, lenient.allow_repeat_tx) == (False, True)
    first = strict.protect(rtp_packet(5))
    with pytest.raises(ReplayError, match="duplicate"):
        strict.protect(rtp_packet(5))
    assert lenient.protect(rtp_packet(5)) == lenient.protect(rtp_packet(5)) == first
    assert receiver.unprotect(first) == rtp_packet(5)


@pytest.mark.parametrize("kdr", [0, 1, 2**10, 2**24])
@pytest.mark.parametrize("index", [0, 1, 1023, 1024, 2**47 + 5])
def test_derive_session_key_matches_reference(kdr: int, index: int) -> None:
    from rtpcore.srtp import derive_session_key

    for profile in ("AES_CM_128_HMAC_SHA1_80", "AES_256_CM_HMAC_SHA1_80", "AEAD_AES_128_GCM"):
        key, salt = keys(profile)
        for label in range(6):
            expected = ref_kdf(key, salt, label, index // kdr if kdr else 0, 30)
            assert derive_session_key(key, salt, label, 30, index=index, key_derivation_rate=kdr) == expected
