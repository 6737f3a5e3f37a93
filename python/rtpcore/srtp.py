"""SRTP and SRTCP (RFC 3711, RFC 6188, RFC 7714) and SDES keying (RFC 4568).

``SRTPSession`` protects and unprotects RTP and RTCP packets for one master
key; the crypto runs in the compiled core. Profiles, by their SDES names::

    AES_CM_128_HMAC_SHA1_80   AES_CM_128_HMAC_SHA1_32   (16-byte key, 14-byte salt)
    AES_256_CM_HMAC_SHA1_80   AES_256_CM_HMAC_SHA1_32   (32-byte key, 14-byte salt)
    AEAD_AES_128_GCM          AEAD_AES_256_GCM          (16/32-byte key, 12-byte salt)

(the DTLS-SRTP names such as ``SRTP_AES128_CM_HMAC_SHA1_80`` are accepted too).
The ``_32`` profiles use a 4-byte tag on RTP and keep the 10-byte tag on RTCP.

``SRTPSession(profile, master_key, master_salt, *, replay_window=128,
key_derivation_rate=0, srtcp_first_index=0, mki=None, allow_repeat_tx=False)``:

* ``protect(rtp)`` / ``unprotect(srtp)`` and ``protect_rtcp(rtcp)`` /
  ``unprotect_rtcp(srtcp)`` take any bytes-like object and return ``bytes``.
  A packet that is not RTP/RTCP or too short for its trailer raises
  ``ParseError``; a wrong tag or unknown MKI raises ``AuthenticationError``;
  a replayed or too old index raises ``ReplayError``. A refused packet never
  changes the session (its replay window and roll-over counter).
* ``protect_batch(packets)``, ``unprotect_batch(packets)``,
  ``protect_rtcp_batch`` and ``unprotect_rtcp_batch`` take an iterable of
  packets, do the crypto with the GIL released, and return a list as long as
  the input, in order: ``bytes`` for each packet that succeeded and, in the
  place of each packet that failed, the *exception instance* the single call
  would have raised (``ParseError``, ``AuthenticationError``, ``ReplayError``),
  not raised. Check with ``isinstance(item, RtpcoreError)``; good packets are
  never lost because of a bad one.
* ``roc(ssrc)`` / ``set_roc(ssrc, roc)``: the roll-over counter of an SSRC,
  for re-keying and re-INVITE. The sender's ROC follows the sequence number
  across 65535 -> 0 by itself, and the receiver's is estimated as in RFC 3711
  section 3.3.1; ``set_roc`` is for joining a stream late.
* ``replay_window``: 64 to 32768 packets (RFC 3711 section 3.3.2; libsrtp's
  default 128). ``key_derivation_rate``: 0 (keys derived once) or a power of
  two up to 2^24. ``srtcp_first_index``: RFC 3711 starts the SRTCP index at 0,
  libsrtp at 1. ``mki``: the master key identifier written into and expected
  on every packet.
* ``protect`` refuses, with ``ReplayError``, a sequence number it protected
  before or one behind the replay window, as libsrtp does: two different
  packets under one index would share a keystream. ``allow_repeat_tx=True``
  lets a sender protect the same packet again (a retransmission).

A session keeps per-SSRC state for both directions; in a call, use one
session with your key to protect and another with the peer's key to
unprotect. A session is not for concurrent use from several threads.

SDES: ``parse_crypto_attribute(line)`` reads an ``a=crypto`` line into a
``CryptoAttribute``; ``CryptoAttribute.generate(tag, suite)`` makes one with
a fresh random key; ``attr.session()`` builds the ``SRTPSession``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from dataclasses import dataclass
from typing import Any

from rtpcore._core import SRTPSession, srtp_aes_cm_keystream, srtp_derive_session_key
from rtpcore.errors import AuthenticationError, ParseError, ReplayError, SRTPError

__all__ = [
    "SRTPSession",
    "PROFILES",
    "CryptoAttribute",
    "parse_crypto_attribute",
    "derive_session_key",
    "aes_cm_keystream",
    "SRTPError",
    "AuthenticationError",
    "ReplayError",
]

#: Master key and salt lengths in bytes, by SDES crypto-suite name.
PROFILES: dict[str, tuple[int, int]] = {
    "AES_CM_128_HMAC_SHA1_80": (16, 14),
    "AES_CM_128_HMAC_SHA1_32": (16, 14),
    "AES_256_CM_HMAC_SHA1_80": (32, 14),
    "AES_256_CM_HMAC_SHA1_32": (32, 14),
    "AEAD_AES_128_GCM": (16, 12),
    "AEAD_AES_256_GCM": (32, 12),
}


def derive_session_key(
    master_key: bytes,
    master_salt: bytes,
    label: int,
    length: int,
    *,
    index: int = 0,
    key_derivation_rate: int = 0,
) -> bytes:
    """Session key material of RFC 3711 section 4.3 (the values of Appendix
    B.3): ``length`` bytes for ``label`` (0-2 SRTP cipher key, auth key,
    salt; 3-5 the same for SRTCP) at packet ``index``."""
    return srtp_derive_session_key(
        master_key,
        master_salt,
        label,
        length,
        index=index,
        key_derivation_rate=key_derivation_rate,
    )


def aes_cm_keystream(
    session_key: bytes, session_salt: bytes, length: int, *, ssrc: int = 0, index: int = 0
) -> bytes:
    """The AES-CM keystream that encrypts the packet with this SSRC and index
    (RFC 3711 section 4.1.1; the values of Appendix B.2)."""
    return srtp_aes_cm_keystream(session_key, session_salt, length, ssrc=ssrc, index=index)


# --- SDES (RFC 4568) -------------------------------------------------------

_PREFIXES = ("a=crypto:", "crypto:")
_TAG = re.compile(r"[0-9]{1,9}")
_LIFETIME = re.compile(r"(2\^)?([0-9]+)")
_MKI = re.compile(r"([0-9]+):([0-9]{1,3})")
#: Session parameters (RFC 4568 section 6.3) that change the transform, which
#: this implementation does not provide; a session cannot honour them.
_UNSUPPORTED_PARAMS = ("UNENCRYPTED_SRTP", "UNENCRYPTED_SRTCP", "UNAUTHENTICATED_SRTP", "FEC_KEY")


def _sdp_error(message: str, offset: int, field: str) -> ParseError:
    return ParseError(message, offset=offset, layer="sdp", field=field)


def _format_lifetime(lifetime: int) -> str:
    if lifetime > 0 and lifetime & (lifetime - 1) == 0:
        return f"2^{lifetime.bit_length() - 1}"
    return str(lifetime)


@dataclass(frozen=True)
class CryptoAttribute:
    """One SDES ``a=crypto`` attribute (RFC 4568 section 9.1).

    ``key`` and ``salt`` are the master key and salt (decoded from the
    ``inline:`` base64 key-salt), ``lifetime`` the master key lifetime in
    packets if given, ``mki`` the ``(value, length in bytes)`` of the master
    key identifier if given, and ``session_params`` the session parameters in
    order (``"KDR=20"``, ``"WSH=256"`` ...). ``str(attr)`` is the attribute
    value, the text after ``a=crypto:``.
    """

    tag: int
    suite: str
    key: bytes
    salt: bytes
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    session_params: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.tag <= 999_999_999:
            raise ValueError(f"tag: must be 0 to 999999999, got {self.tag}")
        if self.suite not in PROFILES:
            raise ValueError(f"suite: unsupported crypto suite {self.suite!r}")
        key_len, salt_len = PROFILES[self.suite]
        if len(self.key) != key_len or len(self.salt) != salt_len:
            raise ValueError(
                f"key/salt: {self.suite} needs a {key_len}-byte key and a {salt_len}-byte salt, "
                f"got {len(self.key)} and {len(self.salt)}"
            )
        if self.lifetime is not None and self.lifetime < 1:
            raise ValueError(f"lifetime: must be positive, got {self.lifetime}")
        if self.mki is not None:
            value, length = self.mki
            if not 1 <= length <= 128 or not 0 <= value < 256**length:
                raise ValueError(f"mki: value must fit in 1 to 128 bytes, got {value}:{length}")

    @classmethod
    def generate(cls, tag: int, suite: str, **fields: Any) -> CryptoAttribute:
        """A new attribute with a fresh random master key and salt from the
        operating system's CSPRNG; other fields may be given as keywords."""
        if suite not in PROFILES:
            raise ValueError(f"suite: unsupported crypto suite {suite!r}")
        key_len, salt_len = PROFILES[suite]
        return cls(tag, suite, secrets.token_bytes(key_len), secrets.token_bytes(salt_len), **fields)

    @property
    def mki_bytes(self) -> bytes | None:
        """The MKI as it appears on the wire, or None."""
        if self.mki is None:
            return None
        value, length = self.mki
        return value.to_bytes(length, "big")

    def session(self, **kw: Any) -> SRTPSession:
        """An ``SRTPSession`` keyed by this attribute, with its MKI and the
        KDR (key derivation rate 2^n) and WSH (replay window) session
        parameters applied; keywords override or add ``SRTPSession``
        options. Session parameters that change the transform
        (UNENCRYPTED_SRTP, UNENCRYPTED_SRTCP, UNAUTHENTICATED_SRTP, FEC_KEY)
        are not supported and raise ``ValueError``."""
        options: dict[str, Any] = {}
        for param in self.session_params:
            name, _, value = param.partition("=")
            if name in _UNSUPPORTED_PARAMS:
                raise ValueError(f"session_params: {name} is not supported")
            if name == "KDR":
                if not value.isdigit() or int(value) > 24:
                    raise ValueError(f"session_params: KDR must be 0 to 24, got {value!r}")
                options["key_derivation_rate"] = 1 << int(value)
            elif name == "WSH":
                if not value.isdigit():
                    raise ValueError(f"session_params: WSH must be a number, got {value!r}")
                options["replay_window"] = int(value)
        if self.mki is not None:
            options["mki"] = self.mki_bytes
        options.update(kw)
        return SRTPSession(self.suite, self.key, self.salt, **options)

    def __str__(self) -> str:
        key_info = base64.b64encode(self.key + self.salt).decode("ascii")
        if self.lifetime is not None:
            key_info += "|" + _format_lifetime(self.lifetime)
        if self.mki is not None:
            key_info += f"|{self.mki[0]}:{self.mki[1]}"
        return " ".join([str(self.tag), self.suite, "inline:" + key_info, *self.session_params])

    def __repr__(self) -> str:
        # The key stays out of reprs (logs).
        return (
            f"CryptoAttribute(tag={self.tag}, suite={self.suite!r}, key=<{len(self.key)} bytes>, "
            f"salt=<{len(self.salt)} bytes>, lifetime={self.lifetime}, mki={self.mki}, "
            f"session_params={self.session_params})"
        )


def _parse_key_info(key_info: str, at: int, suite: str) -> tuple[bytes, bytes, int | None, tuple[int, int] | None]:
    """The key, salt, lifetime and MKI of one ``inline:`` key-info; ``at`` is
    its offset in the line."""
    key_len, salt_len = PROFILES[suite]
    fields = key_info.split("|")
    if len(fields) > 3:
        raise _sdp_error("key-info: more than key-salt|lifetime|mki", at, "key-info")
    key_salt = fields[0]
    try:
        decoded = base64.b64decode(key_salt + "=" * (-len(key_salt) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise _sdp_error(f"key-salt: not base64 ({e})", at, "key-salt") from None
    if len(decoded) != key_len + salt_len:
        raise _sdp_error(
            f"key-salt: {suite} needs {key_len + salt_len} bytes (key {key_len} + salt {salt_len}), "
            f"got {len(decoded)}",
            at,
            "key-salt",
        )
    lifetime: int | None = None
    mki: tuple[int, int] | None = None
    offset = at + len(key_salt) + 1
    for i, field in enumerate(fields[1:]):
        if ":" in field:
            match = _MKI.fullmatch(field)
            if match is None or mki is not None:
                raise _sdp_error(f"mki: expected value:length, got {field!r}", offset, "mki")
            value, length = int(match[1]), int(match[2])
            if not 1 <= length <= 128 or value >= 256**length:
                raise _sdp_error(f"mki: value {value} does not fit in {length} bytes (1-128)", offset, "mki")
            mki = (value, length)
        else:
            match = _LIFETIME.fullmatch(field)
            if match is None or i == 1 or mki is not None:
                raise _sdp_error(f"lifetime: expected 2^n or a number before the MKI, got {field!r}", offset, "lifetime")
            lifetime = 2 ** int(match[2]) if match[1] else int(match[2])
            if lifetime < 1:
                raise _sdp_error("lifetime: must be positive", offset, "lifetime")
        offset += len(field) + 1
    return decoded[:key_len], decoded[key_len:], lifetime, mki


def parse_crypto_attribute(line: str) -> CryptoAttribute:
    """Parses an SDES crypto attribute: ``a=crypto:...``, ``crypto:...`` or
    the bare value ``1 AES_CM_128_HMAC_SHA1_80 inline:...``.

    Raises ``ParseError`` (``layer="sdp"``, ``field`` one of ``tag``,
    ``crypto-suite``, ``key-params``, ``key-salt``, ``lifetime``, ``mki``,
    ``offset`` the character offset in ``line``) on anything malformed, on an
    unsupported crypto suite, and on more than one key-param (several master
    keys for one attribute are not supported).
    """
    if not isinstance(line, str):
        raise TypeError(f"line: expected str, got {type(line).__name__}")
    text = line.rstrip("\r\n")
    start = 0
    for prefix in _PREFIXES:
        if text.startswith(prefix):
            start = len(prefix)
            break
    tokens = [(m.start(), m.group()) for m in re.finditer(r"\S+", text[start:])]
    tokens = [(start + at, token) for at, token in tokens]
    if len(tokens) < 3:
        raise _sdp_error(
            "crypto attribute needs a tag, a crypto-suite and key-params", len(text), "key-params"
        )
    (tag_at, tag), (suite_at, suite), (params_at, key_params) = tokens[:3]
    if _TAG.fullmatch(tag) is None:
        raise _sdp_error(f"tag: expected 1 to 9 digits, got {tag!r}", tag_at, "tag")
    if suite not in PROFILES:
        raise _sdp_error(f"crypto-suite: unsupported {suite!r}", suite_at, "crypto-suite")
    if ";" in key_params:
        raise _sdp_error(
            "key-params: several master keys in one attribute are not supported",
            params_at + key_params.index(";"),
            "key-params",
        )
    method, colon, key_info = key_params.partition(":")
    if method != "inline" or not colon:
        raise _sdp_error(f"key-params: expected inline:<key||salt>, got {key_params!r}", params_at, "key-params")
    key, salt, lifetime, mki = _parse_key_info(key_info, params_at + len("inline:"), suite)
    return CryptoAttribute(
        tag=int(tag),
        suite=suite,
        key=key,
        salt=salt,
        lifetime=lifetime,
        mki=mki,
        session_params=tuple(token for _, token in tokens[3:]),
    )
