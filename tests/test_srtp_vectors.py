"""SRTP/SRTCP against the shared vectors: packets protected by libsrtp for four
profiles (in order, both directions), every negative case with its expected
outcome, and RFC 3711 Appendix B (AES-CM keystream and key derivation).

See ../shared/vectors/srtp/README.md for how the vectors were made.
"""

from __future__ import annotations

from typing import Any

import pytest
import shared_data

from rtpcore.errors import AuthenticationError, ReplayError, RtpcoreError
from rtpcore.srtp import SRTPSession, aes_cm_keystream, derive_session_key

PROFILE_FILES = [
    "srtp_AES_CM_128_HMAC_SHA1_80.json",
    "srtp_AES_CM_128_HMAC_SHA1_32.json",
    "srtp_AEAD_AES_128_GCM.json",
    "srtp_AEAD_AES_256_GCM.json",
]


def load_profile(name: str) -> dict[str, Any]:
    """One libsrtp vector file (the one loader of this family)."""
    vectors: dict[str, Any] = shared_data.shared_json("vectors", "srtp", name)
    return vectors


def negative_cases() -> list[Any]:
    return [
        pytest.param(name, case, id=f"{name.removeprefix('srtp_').removesuffix('.json')}-{case['name']}")
        for name in PROFILE_FILES
        for case in load_profile(name)["negative"]
    ]


def session(vectors: dict[str, Any]) -> SRTPSession:
    # libsrtp sends SRTCP index 1 first (it increments before use).
    return SRTPSession(
        vectors["profile"],
        bytes.fromhex(vectors["master_key"]),
        bytes.fromhex(vectors["master_salt"]),
        srtcp_first_index=1,
    )


@pytest.mark.parametrize("name", PROFILE_FILES)
def test_protect_reproduces_libsrtp(name: str) -> None:
    vectors = load_profile(name)
    sender = session(vectors)
    assert vectors["rtp"] and vectors["rtcp"]
    for packet in vectors["rtp"]:
        protected = sender.protect(bytes.fromhex(packet["plaintext"]))
        assert protected.hex() == packet["protected"], packet["description"]
        assert protected[-vectors["rtp_auth_tag_len"] :].hex() == packet["auth_tag"]
        assert sender.roc(vectors["ssrc"]) == packet["roc"]
    for packet in vectors["rtcp"]:
        protected = sender.protect_rtcp(bytes.fromhex(packet["plaintext"]))
        assert protected.hex() == packet["protected"], packet["description"]


@pytest.mark.parametrize("name", PROFILE_FILES)
def test_unprotect_in_order(name: str) -> None:
    vectors = load_profile(name)
    receiver = session(vectors)
    for packet in vectors["rtp"]:
        assert receiver.unprotect(bytes.fromhex(packet["protected"])).hex() == packet["plaintext"]
        assert receiver.roc(vectors["ssrc"]) == packet["roc"]
    for packet in vectors["rtcp"]:
        assert receiver.unprotect_rtcp(bytes.fromhex(packet["protected"])).hex() == packet["plaintext"]


@pytest.mark.parametrize("name", PROFILE_FILES)
def test_batch_forms_match_single_calls(name: str) -> None:
    vectors = load_profile(name)
    rtp = [bytes.fromhex(p["plaintext"]) for p in vectors["rtp"]]
    rtcp = [bytes.fromhex(p["plaintext"]) for p in vectors["rtcp"]]
    sender = session(vectors)
    assert [p.hex() for p in sender.protect_batch(rtp)] == [p["protected"] for p in vectors["rtp"]]  # type: ignore[union-attr]
    assert [p.hex() for p in sender.protect_rtcp_batch(rtcp)] == [p["protected"] for p in vectors["rtcp"]]  # type: ignore[union-attr]
    receiver = session(vectors)
    assert receiver.unprotect_batch(bytes.fromhex(p["protected"]) for p in vectors["rtp"]) == rtp
    assert receiver.unprotect_rtcp_batch([bytes.fromhex(p["protected"]) for p in vectors["rtcp"]]) == rtcp


@pytest.mark.parametrize("name", PROFILE_FILES)
def test_session_keys(name: str) -> None:
    vectors = load_profile(name)
    key, salt = bytes.fromhex(vectors["master_key"]), bytes.fromhex(vectors["master_salt"])
    keys = vectors["session_keys"]
    for label, field in enumerate(
        ["rtp_cipher_key", "rtp_auth_key", "rtp_salt", "rtcp_cipher_key", "rtcp_auth_key", "rtcp_salt"]
    ):
        if field in keys:
            expected = bytes.fromhex(keys[field])
            assert derive_session_key(key, salt, label, len(expected)) == expected, field


OUTCOMES: dict[str, tuple[type[RtpcoreError], str | None]] = {
    "auth_fail": (AuthenticationError, None),
    "replay_fail": (ReplayError, "duplicate"),
    "replay_old": (ReplayError, "too old"),
}


@pytest.mark.parametrize(("name", "case"), negative_cases())
def test_negative_case(name: str, case: dict[str, Any]) -> None:
    receiver = session(load_profile(name))
    for step in case["steps"]:
        unprotect = receiver.unprotect if step["op"] == "unprotect_rtp" else receiver.unprotect_rtcp
        packet = bytes.fromhex(step["input_hex"])
        if step["expect"] == "ok":
            assert unprotect(packet).hex() == step["output_hex"], step["input"]
        else:
            error, reason = OUTCOMES[step["expect"]]
            with pytest.raises(error) as raised:
                unprotect(packet)
            assert type(raised.value) is error
            if reason is not None:
                assert isinstance(raised.value, ReplayError) and raised.value.reason == reason


@pytest.mark.parametrize(("name", "case"), negative_cases())
def test_negative_case_in_a_batch(name: str, case: dict[str, Any]) -> None:
    """The batch form reports each failure in place and keeps the good packets."""
    steps = case["steps"]
    assert len({step["op"] for step in steps}) == 1, "a batch holds RTP or RTCP packets, not both"
    receiver = session(load_profile(name))
    batch = receiver.unprotect_batch if steps[0]["op"] == "unprotect_rtp" else receiver.unprotect_rtcp_batch
    results = batch([bytes.fromhex(step["input_hex"]) for step in steps])
    assert len(results) == len(steps)
    for step, result in zip(steps, results, strict=True):
        if step["expect"] == "ok":
            assert isinstance(result, bytes) and result.hex() == step["output_hex"]
        else:
            assert type(result) is OUTCOMES[step["expect"]][0]


def appendix_b() -> dict[str, Any]:
    vectors: dict[str, Any] = shared_data.shared_json("vectors", "srtp", "rfc3711_appendix_b.json")
    return vectors


def test_rfc3711_b2_keystream() -> None:
    b2 = appendix_b()["B.2"]
    key = bytes.fromhex(b2["session_key"])
    # The offset is the session salt shifted by 16 bits (SSRC 0, index 0).
    salt = bytes.fromhex(b2["offset"])[:14]
    blocks = b2["blocks"]
    length = 16 * (max(b["block_index"] for b in blocks) + 1)
    keystream = aes_cm_keystream(key, salt, length, ssrc=int(b2["ssrc"], 16), index=0)
    for block in blocks:
        at = 16 * block["block_index"]
        assert keystream[at : at + 16].hex().upper() == block["keystream"], block["block_index"]


def test_rfc3711_b3_key_derivation() -> None:
    b3 = appendix_b()["B.3"]
    master_key, master_salt = bytes.fromhex(b3["master_key"]), bytes.fromhex(b3["master_salt"])
    for field in ("cipher_key", "cipher_salt", "auth_key"):
        entry = b3[field]
        expected = bytes.fromhex(entry[field])
        derived = derive_session_key(master_key, master_salt, int(entry["label"], 16), len(expected))
        assert derived == expected, field
