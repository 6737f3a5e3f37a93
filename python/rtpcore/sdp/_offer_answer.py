"""The offer/answer model (RFC 3264) for one audio stream.

rtpcore serves one audio stream per call: G.711 (PCMU, PCMA) and G.722, with
telephone-event (RFC 4733) for DTMF and CN (RFC 3389) for comfort noise,
plain RTP (RTP/AVP) or SRTP keyed by SDES (RTP/SAVP with ``a=crypto``, RFC
4568). Every other m-line of an offer is answered with port 0, as RFC 3264
section 6 asks.

``AudioPolicy`` says what we can and want to do; ``create_offer`` and
``create_answer`` build descriptions from it; ``negotiate`` reads an answer
(offerer side) or our own answer (answerer side) into a ``NegotiatedAudio``,
the parameters the media engine needs. Keys are only generated and parsed
here, through ``rtpcore.srtp``, which is imported lazily so that plain-RTP
calls do not need it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from rtpcore.errors import ParseError
from rtpcore.sdp._model import (
    DIRECTIONS,
    Connection,
    MediaDescription,
    Origin,
    RTPMap,
    SessionDescription,
)

if TYPE_CHECKING:
    from rtpcore.srtp import CryptoAttribute

__all__ = [
    "AudioPolicy",
    "NegotiatedAudio",
    "OfferAnswerError",
    "create_offer",
    "create_answer",
    "negotiate",
    "reverse_direction",
    "SUPPORTED_CODECS",
]

# name -> (static payload type, clock rate as SDP writes it)
SUPPORTED_CODECS: dict[str, tuple[int, int]] = {
    "PCMU": (0, 8000),
    "PCMA": (8, 8000),
    "G722": (9, 8000),
}
SRTP_SUITES = ("AES_CM_128_HMAC_SHA1_80", "AES_CM_128_HMAC_SHA1_32")
_AUDIO_PROTOS = ("RTP/AVP", "RTP/SAVP")


class OfferAnswerError(ValueError):
    """An offer or answer that cannot give us a usable audio stream.

    ``status_code`` is what a SIP user agent answers an offer with: 488 (Not
    Acceptable Here).
    """

    status_code = 488


@dataclass
class AudioPolicy:
    """What we offer and accept.

    ``codecs`` in order of preference; ``srtp`` is ``"off"`` (RTP/AVP only),
    ``"optional"`` (answer either, offer RTP/AVP) or ``"required"``
    (RTP/SAVP only, offer RTP/SAVP); ``direction`` is ours (``sendonly`` to
    put the peer on hold).
    """

    codecs: tuple[str, ...] = ("PCMU", "PCMA", "G722")
    telephone_event: bool = True
    comfort_noise: bool = False
    ptime: int = 20
    maxptime: int | None = None
    rtcp_mux: bool = True
    srtp: str = "off"
    srtp_suites: tuple[str, ...] = SRTP_SUITES
    direction: str = "sendrecv"
    telephone_event_payload_type: int = 101

    def __post_init__(self) -> None:
        for name in self.codecs:
            if name not in SUPPORTED_CODECS:
                raise ValueError(f"codecs: unsupported codec {name!r}")
        if self.srtp not in ("off", "optional", "required"):
            raise ValueError(f"srtp: must be off, optional or required, got {self.srtp!r}")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"direction: must be one of {DIRECTIONS}, got {self.direction!r}")
        if not 10 <= self.ptime <= 200:
            raise ValueError(f"ptime: must be 10..200 ms, got {self.ptime}")


@dataclass
class NegotiatedAudio:
    """The outcome of offer/answer for the audio stream.

    ``remote_address``/``remote_port`` is where to send RTP (RTCP goes to the
    same port with rtcp-mux, else to ``remote_rtcp_port``). ``direction`` is
    ours: whether we may send and should expect to receive. ``local_crypto``
    keys what we send, ``remote_crypto`` what we receive (both None for RTP).
    """

    codec: RTPMap
    remote_address: str
    remote_port: int
    remote_rtcp_port: int
    rtcp_mux: bool
    ptime: int
    direction: str
    telephone_event: RTPMap | None = None
    comfort_noise: RTPMap | None = None
    local_crypto: CryptoAttribute | None = None
    remote_crypto: CryptoAttribute | None = None
    media_index: int = 0

    @property
    def sending(self) -> bool:
        return self.direction in ("sendrecv", "sendonly")

    @property
    def receiving(self) -> bool:
        return self.direction in ("sendrecv", "recvonly")

    @property
    def on_hold(self) -> bool:
        """The peer will not receive our media (we are sendonly/inactive or held)."""
        return self.direction in ("recvonly", "inactive")


def reverse_direction(direction: str) -> str:
    """The direction as seen from the other side (sendonly <-> recvonly)."""
    return {"sendonly": "recvonly", "recvonly": "sendonly"}.get(direction, direction)


def _answer_direction(offered: str, local: str) -> str:
    # What we may do is what we want and what the offerer lets us.
    send = local in ("sendrecv", "sendonly") and offered in ("sendrecv", "recvonly")
    recv = local in ("sendrecv", "recvonly") and offered in ("sendrecv", "sendonly")
    return {(True, True): "sendrecv", (True, False): "sendonly",
            (False, True): "recvonly", (False, False): "inactive"}[(send, recv)]


def _srtp() -> Any:
    import rtpcore.srtp

    return rtpcore.srtp


_RANDOM = random.SystemRandom()


def _new_origin(address: str) -> Origin:
    session_id = _RANDOM.randrange(1, 2**62)
    return Origin("rtpcore", session_id, session_id, "IN", _addrtype(address), address)


def _addrtype(address: str) -> str:
    return "IP6" if ":" in address else "IP4"


def _audio_section(policy: AudioPolicy, port: int, codecs: list[RTPMap],
                   telephone_event: RTPMap | None, comfort_noise: RTPMap | None,
                   proto: str, direction: str, ptime: int, rtcp_mux: bool) -> MediaDescription:
    maps = list(codecs)
    if comfort_noise is not None:
        maps.append(comfort_noise)
    if telephone_event is not None:
        maps.append(telephone_event)
    media = MediaDescription("audio", port, proto, [str(m.payload_type) for m in maps])
    for m in maps:
        media.attributes.append(("rtpmap", str(m)))
    if telephone_event is not None:
        media.attributes.append(("fmtp", f"{telephone_event.payload_type} 0-16"))
    media.attributes.append(("ptime", str(ptime)))
    if policy.maxptime is not None:
        media.attributes.append(("maxptime", str(policy.maxptime)))
    if rtcp_mux:
        media.attributes.append(("rtcp-mux", None))
    media.attributes.append((direction, None))
    return media


def create_offer(address: str, port: int, policy: AudioPolicy | None = None,
                 previous: SessionDescription | None = None) -> SessionDescription:
    """An offer for one audio stream at ``address:port``.

    Pass the previous local description as ``previous`` for a re-offer
    (hold, resume, new address): the origin's session id is kept and its
    version increased, as RFC 3264 section 8 requires.
    """
    policy = policy or AudioPolicy()
    codecs = []
    for name in policy.codecs:
        payload_type, rate = SUPPORTED_CODECS[name]
        codecs.append(RTPMap(payload_type, name, rate))
    event = (RTPMap(policy.telephone_event_payload_type, "telephone-event", 8000)
             if policy.telephone_event else None)
    noise = RTPMap(13, "CN", 8000) if policy.comfort_noise else None
    proto = "RTP/SAVP" if policy.srtp == "required" else "RTP/AVP"
    media = _audio_section(policy, port, codecs, event, noise, proto, policy.direction,
                           policy.ptime, policy.rtcp_mux)
    if proto == "RTP/SAVP":
        srtp = _srtp()
        for tag, suite in enumerate(policy.srtp_suites, start=1):
            media.attributes.append(("crypto", str(srtp.CryptoAttribute.generate(tag, suite))))
    return SessionDescription(origin=_next_origin(previous, address),
                              connection=Connection(address, _addrtype(address)),
                              media=[media])


def _next_origin(previous: SessionDescription | None, address: str) -> Origin:
    if previous is None:
        return _new_origin(address)
    return replace(previous.origin, session_version=previous.origin.session_version + 1,
                   address=address, addrtype=_addrtype(address))


def _rejected(offered: MediaDescription) -> MediaDescription:
    # RFC 3264 section 6: same media and proto, port 0, at least one format.
    return MediaDescription(offered.media, 0, offered.proto, offered.formats[:1] or ["0"])


def _pick_crypto(offered: MediaDescription, policy: AudioPolicy) -> tuple[Any, Any] | None:
    """(our answer's CryptoAttribute, the offer's one we accepted), or None."""
    srtp = _srtp()
    for value in offered.attribute_values("crypto"):
        try:
            remote = srtp.parse_crypto_attribute(value)
        except ParseError:
            continue  # RFC 4568 6.1: ignore crypto lines we cannot parse
        if remote.suite in policy.srtp_suites and not remote.session_params:
            return srtp.CryptoAttribute.generate(remote.tag, remote.suite), remote
    return None


def create_answer(offer: SessionDescription, address: str, port: int,
                  policy: AudioPolicy | None = None,
                  previous: SessionDescription | None = None,
                  ) -> tuple[SessionDescription, NegotiatedAudio]:
    """Answer ``offer`` with one audio stream at ``address:port``.

    Returns the answer and what was negotiated. The first audio m-line we can
    serve is accepted; every other m-line is answered with port 0. Raises
    ``OfferAnswerError`` (488) if no m-line can be served.
    """
    policy = policy or AudioPolicy()
    answer = SessionDescription(origin=_next_origin(previous, address),
                                connection=Connection(address, _addrtype(address)))
    negotiated: NegotiatedAudio | None = None
    for index, offered in enumerate(offer.media):
        if negotiated is not None or offered.rejected:
            answer.media.append(_rejected(offered))
            continue
        accepted = _accept_audio(offer, offered, index, policy, port)
        if accepted is None:
            answer.media.append(_rejected(offered))
            continue
        answer.media.append(accepted[0])
        negotiated = accepted[1]
    if negotiated is None:
        raise OfferAnswerError("no acceptable audio stream in the offer")
    return answer, negotiated


def _accept_audio(offer: SessionDescription, offered: MediaDescription, index: int,
                  policy: AudioPolicy, port: int) -> tuple[MediaDescription, NegotiatedAudio] | None:
    if offered.media != "audio" or offered.proto not in _AUDIO_PROTOS:
        return None
    secure = offered.proto == "RTP/SAVP"
    if (secure and policy.srtp == "off") or (not secure and policy.srtp == "required"):
        return None
    connection = offer.connection_for(offered)
    if connection is None:
        return None
    maps = offered.rtpmaps()
    common: list[RTPMap] = []
    for name in policy.codecs:
        for fmt in offered.formats:
            m = maps.get(int(fmt)) if fmt.isdigit() else None
            if m is not None and m.encoding.upper() == name and m.clock_rate == \
                    SUPPORTED_CODECS[name][1] and m.channels == 1:
                common.append(m)
                break
    if not common:
        return None
    event = noise = None
    for fmt in offered.formats:
        m = maps.get(int(fmt)) if fmt.isdigit() else None
        if m is None:
            continue
        if (policy.telephone_event and event is None and m.encoding.lower() == "telephone-event"
                and m.clock_rate == 8000):
            event = m
        if policy.comfort_noise and noise is None and m.encoding.upper() == "CN" \
                and m.clock_rate == 8000:
            noise = m
    crypto = None
    if secure:
        crypto = _pick_crypto(offered, policy)
        if crypto is None:
            return None
    offered_direction = offer.direction_for(offered)
    if connection.is_hold_address and offered_direction == "sendrecv":
        offered_direction = "sendonly"  # RFC 2543 hold: c=0.0.0.0
    direction = _answer_direction(offered_direction, policy.direction)
    ptime = offered.ptime or policy.ptime
    if offered.maxptime is not None and ptime > offered.maxptime:
        ptime = offered.maxptime
    rtcp_mux = policy.rtcp_mux and offered.rtcp_mux
    media = _audio_section(policy, port, common, event, noise, offered.proto, direction, ptime,
                           rtcp_mux)
    if crypto is not None:
        media.attributes.append(("crypto", str(crypto[0])))
    negotiated = NegotiatedAudio(
        codec=common[0],
        remote_address=connection.host,
        remote_port=offered.port,
        remote_rtcp_port=offered.port if rtcp_mux else _rtcp_port(offered),
        rtcp_mux=rtcp_mux,
        ptime=ptime,
        direction=direction,
        telephone_event=event,
        comfort_noise=noise,
        local_crypto=crypto[0] if crypto else None,
        remote_crypto=crypto[1] if crypto else None,
        media_index=index,
    )
    return media, negotiated


def _rtcp_port(media: MediaDescription) -> int:
    value = media.attribute("rtcp")  # RFC 3605: a=rtcp:port [addr]
    if value:
        first = value.split()[0]
        if first.isdigit():
            return int(first)
    return media.port + 1


def negotiate(offer: SessionDescription, answer: SessionDescription,
              local_crypto: list[Any] | None = None) -> NegotiatedAudio:
    """Read the peer's ``answer`` to our ``offer`` (offerer side).

    ``local_crypto`` lists the CryptoAttributes we offered (parsed from the
    offer when omitted). Raises ``OfferAnswerError`` if the answer accepts no
    audio stream we offered, picks a codec or crypto suite we did not offer,
    or has a different number of m-lines.
    """
    if len(answer.media) != len(offer.media):
        raise OfferAnswerError("answer has a different number of m-lines than the offer")
    for index, (ours, theirs) in enumerate(zip(offer.media, answer.media)):
        if ours.media != "audio" or ours.rejected or theirs.rejected:
            continue
        connection = answer.connection_for(theirs)
        if connection is None:
            raise OfferAnswerError("answer has no connection address")
        offered_maps = ours.rtpmaps()
        answered_maps = theirs.rtpmaps()
        codec = event = noise = None
        for fmt in theirs.formats:
            m = answered_maps.get(int(fmt)) if fmt.isdigit() else None
            if m is None:
                continue
            mine = offered_maps.get(m.payload_type)
            if mine is None or mine.encoding.upper() != m.encoding.upper():
                raise OfferAnswerError(f"answer uses payload type {fmt} we did not offer")
            if m.encoding.lower() == "telephone-event":
                event = event or m
            elif m.encoding.upper() == "CN":
                noise = noise or m
            elif codec is None and m.encoding.upper() in SUPPORTED_CODECS:
                codec = m
        if codec is None:
            raise OfferAnswerError("answer has no codec we offered")
        crypto: tuple[Any, Any] | None = None
        if theirs.proto == "RTP/SAVP":
            crypto = _match_answer_crypto(ours, theirs, local_crypto)
        elif ours.proto == "RTP/SAVP":
            raise OfferAnswerError("answer dropped SRTP from an RTP/SAVP offer")
        direction = reverse_direction(answer.direction_for(theirs))
        if connection.is_hold_address:  # RFC 2543 hold: do not send to 0.0.0.0
            direction = {"sendrecv": "recvonly", "sendonly": "inactive"}.get(direction, direction)
        rtcp_mux = ours.rtcp_mux and theirs.rtcp_mux
        return NegotiatedAudio(
            codec=codec,
            remote_address=connection.host,
            remote_port=theirs.port,
            remote_rtcp_port=theirs.port if rtcp_mux else _rtcp_port(theirs),
            rtcp_mux=rtcp_mux,
            ptime=theirs.ptime or ours.ptime or 20,
            direction=direction,
            telephone_event=event,
            comfort_noise=noise,
            local_crypto=crypto[0] if crypto else None,
            remote_crypto=crypto[1] if crypto else None,
            media_index=index,
        )
    raise OfferAnswerError("answer accepted no audio stream")


def _match_answer_crypto(ours: MediaDescription, theirs: MediaDescription,
                         local_crypto: list[Any] | None) -> tuple[Any, Any]:
    srtp = _srtp()
    if local_crypto is None:
        local_crypto = [srtp.parse_crypto_attribute(v) for v in ours.attribute_values("crypto")]
    answered = theirs.attribute_values("crypto")
    if len(answered) != 1:
        raise OfferAnswerError("an SRTP answer must carry exactly one a=crypto")
    try:
        remote = srtp.parse_crypto_attribute(answered[0])
    except ParseError as exc:
        raise OfferAnswerError(f"unparseable a=crypto in answer: {exc}") from None
    for local in local_crypto:
        if local.tag == remote.tag and local.suite == remote.suite:
            return local, remote
    raise OfferAnswerError("answer's a=crypto matches no offered tag and suite")
