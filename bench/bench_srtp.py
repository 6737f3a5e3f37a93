"""SRTP per-packet cost from Python: rtpcore (one call per packet, and the
batch form) against libsrtp 2.7 through pylibsrtp, side by side.

Each round protects (or unprotects) a run of PACKETS consecutive packets
with a fresh session, so the replay window never refuses a packet; the
session and, for unprotect, the protected input are made in the untimed
setup. Divide a round's time by PACKETS for the cost per packet. Key setup
is timed in its own group. Before timing, each case checks that its output
equals libsrtp's (or, for the AES-256-CM profiles libsrtp's Python binding
lacks, that it round-trips) and records that in extra_info["agrees"].
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pylibsrtp
import pytest

from rtpcore.srtp import PROFILES, SRTPSession

PACKETS = 64
ROUNDS = 60
SIZES = [172, 1200]
LIBSRTP_PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80,
    "AES_CM_128_HMAC_SHA1_32": pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_32,
    "AEAD_AES_128_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": pylibsrtp.Policy.SRTP_PROFILE_AEAD_AES_256_GCM,
}
IMPLEMENTATIONS = ["rtpcore", "rtpcore-batch", "pylibsrtp"]

Run = Callable[[list[bytes]], list[Any]]


def master(profile: str) -> tuple[bytes, bytes]:
    key_len, salt_len = PROFILES[profile]
    return bytes(range(1, key_len + 1)), bytes(range(100, 100 + salt_len))


def rtp_packets(size: int) -> list[bytes]:
    """PACKETS consecutive RTP packets of `size` bytes (12-byte header)."""
    return [
        b"\x80\x00" + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + b"\x12\x34\x56\x78" + bytes([seq]) * (size - 12)
        for seq in range(1, PACKETS + 1)
    ]


def session_factory(impl: str, profile: str, *, outbound: bool) -> Callable[[], Any]:
    key, salt = master(profile)
    if impl == "pylibsrtp":
        ssrc_type = pylibsrtp.Policy.SSRC_ANY_OUTBOUND if outbound else pylibsrtp.Policy.SSRC_ANY_INBOUND
        return lambda: pylibsrtp.Session(pylibsrtp.Policy(key=key + salt, ssrc_type=ssrc_type, srtp_profile=LIBSRTP_PROFILES[profile]))
    return lambda: SRTPSession(profile, key, salt)


def runner(impl: str, session: Any, op: str) -> Run:
    """Processes a list of packets with one session: one call per packet, or
    one batch call."""
    if impl == "rtpcore-batch":
        batch: Run = getattr(session, op + "_batch")
        return batch
    single = getattr(session, op)
    return lambda packets: [single(p) for p in packets]


def cases() -> list[Any]:
    return [
        pytest.param(profile, size, impl, id=f"{profile}-{size}B-{impl}")
        for profile in PROFILES
        for size in SIZES
        for impl in IMPLEMENTATIONS
    ]


def reference_protected(profile: str, packets: list[bytes]) -> list[bytes]:
    """What the sender of reference produces for these packets: libsrtp where
    pylibsrtp offers the profile, rtpcore's single call otherwise."""
    impl = "pylibsrtp" if profile in LIBSRTP_PROFILES else "rtpcore"
    return runner(impl, session_factory(impl, profile, outbound=True)(), "protect")(packets)


def bench_packets(benchmark: Any, profile: str, size: int, impl: str, op: str) -> None:
    if impl == "pylibsrtp" and profile not in LIBSRTP_PROFILES:
        pytest.skip("pylibsrtp has no AES-256-CM profile")
    benchmark.group = f"srtp {op} {profile} {size}B"
    benchmark.extra_info["packets_per_round"] = PACKETS
    plain = rtp_packets(size)
    protected = reference_protected(profile, plain)
    inputs, expected = (plain, protected) if op == "protect" else (protected, plain)
    make = session_factory(impl, profile, outbound=op == "protect")
    if impl == "rtpcore" and profile not in LIBSRTP_PROFILES and op == "protect":
        # No independent sender: check the round trip instead.
        benchmark.extra_info["agrees"] = runner("rtpcore", make(), "unprotect")(protected) == plain
    else:
        benchmark.extra_info["agrees"] = runner(impl, make(), op)(inputs) == expected
    assert benchmark.extra_info["agrees"]
    benchmark.pedantic(
        lambda run: run(inputs),
        setup=lambda: ((runner(impl, make(), op),), {}),
        rounds=ROUNDS,
        warmup_rounds=2,
    )


@pytest.mark.parametrize(("profile", "size", "impl"), cases())
def test_protect(benchmark: Any, profile: str, size: int, impl: str) -> None:
    bench_packets(benchmark, profile, size, impl, "protect")


@pytest.mark.parametrize(("profile", "size", "impl"), cases())
def test_unprotect(benchmark: Any, profile: str, size: int, impl: str) -> None:
    bench_packets(benchmark, profile, size, impl, "unprotect")


@pytest.mark.parametrize("impl", ["rtpcore", "pylibsrtp"])
@pytest.mark.parametrize("profile", ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_128_GCM"])
def test_key_setup(benchmark: Any, profile: str, impl: str) -> None:
    """Creating a session from a master key (key derivation and expansion)."""
    benchmark.group = f"srtp key setup {profile}"
    make = session_factory(impl, profile, outbound=True)
    packet = rtp_packets(172)[0]
    benchmark.extra_info["agrees"] = make().protect(packet) == session_factory("pylibsrtp", profile, outbound=True)().protect(packet)
    assert benchmark.extra_info["agrees"]
    benchmark(make)
