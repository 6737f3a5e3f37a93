"""SDP (RFC 8866) and the offer/answer model (RFC 3264) for rtpcore calls.

``SessionDescription.parse`` / ``.encode`` read and write SDP bodies;
``create_offer``, ``create_answer`` and ``negotiate`` turn them into the
parameters of one audio stream (codec, remote address, ptime, direction,
rtcp-mux, SRTP keys) as a ``NegotiatedAudio``.
"""

from __future__ import annotations

from rtpcore.sdp._model import (
    DIRECTIONS,
    STATIC_PAYLOAD_TYPES,
    Connection,
    MediaDescription,
    Origin,
    RTPMap,
    SessionDescription,
)
from rtpcore.sdp._offer_answer import (
    SRTP_SUITES,
    SUPPORTED_CODECS,
    AudioPolicy,
    NegotiatedAudio,
    OfferAnswerError,
    create_answer,
    create_offer,
    negotiate,
    reverse_direction,
)

__all__ = [
    "DIRECTIONS",
    "STATIC_PAYLOAD_TYPES",
    "SRTP_SUITES",
    "SUPPORTED_CODECS",
    "AudioPolicy",
    "Connection",
    "MediaDescription",
    "NegotiatedAudio",
    "OfferAnswerError",
    "Origin",
    "RTPMap",
    "SessionDescription",
    "create_answer",
    "create_offer",
    "negotiate",
    "reverse_direction",
]
