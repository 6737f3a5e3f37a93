"""Differential tests against libsrtp 2.7 through pylibsrtp, live: both
directions for every profile pylibsrtp offers (AES-CM-128 _80/_32 and both
GCM), random payloads 0-1400 bytes with CSRCs, header extensions and
padding, sequence roll-over, and a receiver fed reordered, replayed, too old
and forged packets, whose every verdict must be libsrtp's."""

from __future__ import annotations

import random

import pylibsrtp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import AuthenticationError, ReplayError
from rtpcore.srtp import PROFILES, SRTPSession

LIBSRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
SSRC = 0x1BADCAFE
# pylibsrtp protects into a 1500-byte buffer less its 144-byte worst-case
# trailer; longer packets (payloads up to 1400 bytes) are checked by having
# libsrtp unprotect ours, which it takes up to 1500 bytes.
LIBSRTP_PROTECT_MAX = 1500 - pylibsrtp.SRTP_MAX_TRAILER_LEN


def libsrtp(profile: str, key: bytes, salt: bytes, *, outbound: bool) -> pylibsrtp.Session:
    policy = pylibsrtp.Policy(
        key=key + salt,
        ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND,
        srtp_profile=LIBSRTP_PROFILES[profile],
    )
    return pylibsrtp.Session(policy)


def rtpcore(profile: str, key: bytes, salt: bytes) -> SRTPSession:
    return SRTPSession(profile, key, salt, srtcp_first_index=1)  # libsrtp sends index 1 first


def keys(profile: str, rng: random.Random) -> tuple[bytes, bytes]:
    key_len, salt_len = PROFILES[profile]
    return rng.randbytes(key_len), rng.randbytes(salt_len)


def random_rtp(rng: random.Random, seq: int) -> bytes:
    """An RTP packet with random CSRCs, extension, padding and a payload of
    0-1400 bytes; at most 1460 bytes, so that it fits libsrtp's 1500-byte
    buffer when protected."""
    csrcs = rng.choice([0, 0, 1, 2, 15])
    extension = b""
    if rng.random() < 0.4:
        profile = rng.choice([b"\xbe\xde", b"\x10\x00"])  # RFC 8285 one-byte, two-byte
        words = rng.randint(0, 4)
        extension = profile + words.to_bytes(2, "big") + rng.randbytes(4 * words)
    padding = rng.choice([0, 0, 0, 1, 4, 7])
    room = 1460 - 12 - 4 * csrcs - len(extension) - padding
    payload = rng.randbytes(rng.randint(0, min(1400, room)))
    if padding:
        payload += bytes(padding - 1) + bytes([padding])
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension else 0) | csrcs
    header = bytes([first, rng.randint(0, 255)]) + seq.to_bytes(2, "big") + rng.randbytes(4) + SSRC.to_bytes(4, "big")
    return header + rng.randbytes(4 * csrcs) + extension + payload


def random_rtcp(rng: random.Random) -> bytes:
    body = rng.randbytes(4 * rng.randint(1, 60))
    return bytes([0x80 | rng.randint(0, 31), rng.choice([200, 201, 202, 203])]) + (len(body) // 4 + 1).to_bytes(2, "big") + SSRC.to_bytes(4, "big") + body


def verdict(call: object, packet: bytes) -> tuple[str, bytes | None]:
    """What a receiver made of a packet, as a comparable value."""
    try:
        return "ok", call(packet)  # type: ignore[operator]
    except AuthenticationError:
        return "auth", None
    except ReplayError as e:
        return e.reason or "replay", None
    except pylibsrtp.Error as e:
        message = str(e)
        for needle, name in (
            ("authentication failure", "auth"),
            ("replay check failed (bad index)", "duplicate"),
            ("replay check failed (index too old)", "too old"),
        ):
            if needle in message:
                return name, None
        raise


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES)
@pytest.mark.parametrize("seed", range(3))
def test_rtp_both_directions(profile: str, seed: int) -> None:
    rng = random.Random(f"{profile}-{seed}")
    key, salt = keys(profile, rng)
    ours_tx, ours_rx = rtpcore(profile, key, salt), rtpcore(profile, key, salt)
    theirs_tx, theirs_rx = libsrtp(profile, key, salt, outbound=True), libsrtp(profile, key, salt, outbound=False)
    seq = rng.choice([0, 65500, rng.randint(0, 65535)])
    for _ in range(120):  # crosses 65535 -> 0 from the 65500 start
        packet = random_rtp(rng, seq)
        ours = ours_tx.protect(packet)
        if len(packet) <= LIBSRTP_PROTECT_MAX:
            assert ours == theirs_tx.protect(packet)
        assert theirs_rx.unprotect(ours) == packet
        assert ours_rx.unprotect(ours) == packet
        seq = (seq + rng.choice([1, 1, 1, 2, 5])) & 0xFFFF


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES)
def test_libsrtp_sender_rtpcore_receiver(profile: str) -> None:
    rng = random.Random(profile)
    key, salt = keys(profile, rng)
    theirs_tx, ours_rx = libsrtp(profile, key, salt, outbound=True), rtpcore(profile, key, salt)
    for seq in [*range(65530, 65536), *range(0, 10)]:
        packet = random_rtp(rng, seq)[:LIBSRTP_PROTECT_MAX]
        packet = bytes([packet[0] & ~0x20]) + packet[1:]  # truncation may cut the padding
        assert ours_rx.unprotect(theirs_tx.protect(packet)) == packet
    assert ours_rx.roc(SSRC) == 1
    for _ in range(20):
        packet = random_rtcp(rng)
        assert ours_rx.unprotect_rtcp(theirs_tx.protect_rtcp(packet)) == packet


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES)
def test_rtcp_both_directions(profile: str) -> None:
    rng = random.Random(profile)
    key, salt = keys(profile, rng)
    ours_tx, theirs_tx = rtpcore(profile, key, salt), libsrtp(profile, key, salt, outbound=True)
    ours_rx, theirs_rx = rtpcore(profile, key, salt), libsrtp(profile, key, salt, outbound=False)
    sent = []
    for _ in range(200):
        packet = random_rtcp(rng)
        protected = ours_tx.protect_rtcp(packet)
        assert protected == theirs_tx.protect_rtcp(packet)
        assert theirs_rx.unprotect_rtcp(protected) == packet
        assert ours_rx.unprotect_rtcp(protected) == packet
        sent.append(protected)
    for late in (sent[199], sent[150], sent[0]):  # duplicate, duplicate, too old
        assert verdict(ours_rx.unprotect_rtcp, late) == verdict(theirs_rx.unprotect_rtcp, late)
    assert verdict(ours_rx.unprotect_rtcp, sent[0]) == ("too old", None)


STREAM_START = 65536 - 60
STREAM_LEN = 300


@settings(max_examples=60, deadline=None)
@given(
    profile=st.sampled_from(sorted(LIBSRTP_PROFILES)),
    arrivals=st.lists(
        st.tuples(st.integers(0, STREAM_LEN - 1), st.sampled_from(["intact", "intact", "intact", "payload", "tag"])),
        max_size=60,
    ),
)
def test_receiver_verdicts_match_libsrtp(profile: str, arrivals: list[tuple[int, str]]) -> None:
    """Reordering inside the window, replays, too old and forged packets
    across a roll-over: every verdict and every plaintext is libsrtp's."""
    rng = random.Random(profile)
    key, salt = keys(profile, rng)
    sender = rtpcore(profile, key, salt)
    stream = [sender.protect(random_rtp(rng, (STREAM_START + k) & 0xFFFF)) for k in range(STREAM_LEN)]
    ours, theirs = rtpcore(profile, key, salt), libsrtp(profile, key, salt, outbound=False)
    for k, damage in [(0, "intact"), *arrivals]:
        packet = bytearray(stream[k])
        if damage == "payload":
            packet[-20] ^= 0x80
        elif damage == "tag":
            packet[-1] ^= 0x01
        assert verdict(ours.unprotect, bytes(packet)) == verdict(theirs.unprotect, bytes(packet)), (k, damage)


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES)
def test_sender_refuses_reused_indices_like_libsrtp(profile: str) -> None:
    rng = random.Random(profile)
    key, salt = keys(profile, rng)
    ours, theirs = rtpcore(profile, key, salt), libsrtp(profile, key, salt, outbound=True)
    for seq in [10, 11, 11, 400, 200, 272, 273, 10]:  # repeat, too old (>= 128 behind), inside
        packet = random_rtp(rng, seq)[:LIBSRTP_PROTECT_MAX]
        packet = bytes([packet[0] & ~0x20]) + packet[1:]
        assert verdict(ours.protect, packet) == verdict(theirs.protect, packet), seq


@pytest.mark.parametrize("profile", LIBSRTP_PROFILES)
def test_unencrypted_srtcp_from_libsrtp(profile: str) -> None:
    """libsrtp sending SRTCP with authentication only (E flag 0; RFC 7714
    section 9.3 for GCM). pylibsrtp does not expose the security services,
    so the test sets srtp_crypto_policy_t.sec_serv (the sixth int of the
    struct) after checking the fields it can recognise."""
    rng = random.Random(profile)
    key, salt = keys(profile, rng)
    policy = pylibsrtp.Policy(
        key=key + salt, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND, srtp_profile=LIBSRTP_PROFILES[profile]
    )
    fields = pylibsrtp.ffi.cast("int *", pylibsrtp.ffi.addressof(policy._policy.rtcp))
    tag_len = 16 if profile.startswith("AEAD") else 10
    assert (fields[1], fields[4], fields[5]) == (sum(PROFILES[profile]), tag_len, 3)  # key+salt, tag, conf|auth
    fields[5] = 2  # sec_serv_auth
    sender, receiver = pylibsrtp.Session(policy), rtpcore(profile, key, salt)
    for _ in range(5):
        packet = random_rtcp(rng)
        protected = sender.protect_rtcp(packet)
        assert protected[: len(packet)] == packet  # sent in the clear
        assert receiver.unprotect_rtcp(protected) == packet
    forged = bytearray(sender.protect_rtcp(random_rtcp(rng)))
    forged[9] ^= 1  # the clear payload is authenticated
    assert verdict(receiver.unprotect_rtcp, bytes(forged)) == ("auth", None)
