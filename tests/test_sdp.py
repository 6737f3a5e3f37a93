"""SDP parsing/serialization (RFC 8866) and offer/answer (RFC 3264)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtpcore.errors import ParseError
from rtpcore.sdp import (
    AudioPolicy,
    OfferAnswerError,
    RTPMap,
    SessionDescription,
    create_answer,
    create_offer,
    negotiate,
)

# RFC 4317 section 2.1 (audio and video offer), Alice's offer.
RFC4317_OFFER = (
    "v=0\r\n"
    "o=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\n"
    "s=\r\n"
    "c=IN IP4 host.atlanta.example.com\r\n"
    "t=0 0\r\n"
    "m=audio 49170 RTP/AVP 0 8 97\r\n"
    "a=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:97 iLBC/8000\r\n"
    "m=video 51372 RTP/AVP 31 32\r\n"
    "a=rtpmap:31 H261/90000\r\n"
    "a=rtpmap:32 MPV/90000\r\n"
)


def offer_text(*media_lines: str, session: str = "c=IN IP4 198.51.100.7\r\n") -> str:
    return ("v=0\r\no=- 1 1 IN IP4 198.51.100.7\r\ns=-\r\n" + session + "t=0 0\r\n"
            + "".join(line + "\r\n" for line in media_lines))


def test_parse_rfc4317_offer_and_round_trip() -> None:
    sdp = SessionDescription.parse(RFC4317_OFFER.encode())
    assert sdp.origin.username == "alice" and sdp.origin.session_version == 2890844526
    assert sdp.session_name == ""
    assert sdp.connection is not None and sdp.connection.host == "host.atlanta.example.com"
    audio, video = sdp.media
    assert (audio.media, audio.port, audio.proto, audio.formats) == ("audio", 49170, "RTP/AVP",
                                                                      ["0", "8", "97"])
    assert audio.rtpmaps()[97] == RTPMap(97, "iLBC", 8000)
    assert video.rtpmaps()[31].clock_rate == 90000
    assert sdp.encode().decode() == RFC4317_OFFER
    # LF-only line endings are accepted too (RFC 8866 section 5)
    assert SessionDescription.parse(RFC4317_OFFER.replace("\r\n", "\n")).encode() == sdp.encode()


def test_static_payload_types_without_rtpmap_and_attributes() -> None:
    sdp = SessionDescription.parse(offer_text(
        "m=audio 4000 RTP/AVP 9 13 101", "a=rtpmap:101 telephone-event/8000",
        "a=fmtp:101 0-15", "a=ptime:30", "a=maxptime:60", "a=rtcp:4005 IN IP4 198.51.100.9",
        "a=sendonly", "a=x-unknown:keep me"))
    media = sdp.media[0]
    assert {pt: m.encoding for pt, m in media.rtpmaps().items()} == {
        9: "G722", 13: "CN", 101: "telephone-event"}
    assert media.fmtp(101) == "0-15" and media.fmtp(9) is None
    assert (media.ptime, media.maxptime, media.direction, media.rtcp_mux) == (30, 60, "sendonly", False)
    assert media.attribute("x-unknown") == "keep me"
    media.direction = "sendrecv"
    assert media.attribute_values("sendonly") == [] and media.direction == "sendrecv"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("v=0\r\ns=-\r\nt=0 0\r\n", "o="),
        ("v=1\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\n", "v="),
        ("v=0\r\no=- x 1 IN IP4 a\r\ns=-\r\nt=0 0\r\n", "o="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio port RTP/AVP 0\r\n", "m="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio 70000 RTP/AVP 0\r\n", "m="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nc=IN IP4\r\nt=0 0\r\n", "c="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nx=what\r\n", "x="),
        ("o=- 1 1 IN IP4 a\r\nv=0\r\ns=-\r\nt=0 0\r\n", "v="),
        ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\na=bad name\r\n", "a="),
    ],
)
def test_malformed_sdp(text: str, field: str) -> None:
    with pytest.raises(ParseError) as info:
        SessionDescription.parse(text.encode())
    assert info.value.layer == "sdp" and info.value.field == field


def test_lines_out_of_rfc_order_are_accepted_and_written_in_order() -> None:
    text = ("v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\na=sendonly\r\nt=0 0\r\nc=IN IP4 192.0.2.1\r\n"
            "m=audio 4000 RTP/AVP 0\r\n")
    sdp = SessionDescription.parse(text)
    assert sdp.connection is not None and sdp.connection.host == "192.0.2.1"
    assert sdp.direction_for(sdp.media[0]) == "sendonly"
    assert sdp.encode().decode().index("c=") < sdp.encode().decode().index("t=")


def test_error_offset_is_the_line() -> None:
    text = "v=0\r\no=- 1 1 IN IP4 a\r\ns=-\r\nt=0 0\r\nm=audio x RTP/AVP 0\r\n"
    with pytest.raises(ParseError) as info:
        SessionDescription.parse(text)
    assert info.value.offset == text.index("m=")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="vosctmab=0123456789 IN/RTP:\r\n-.", max_size=200))
def test_fuzz_parse_or_parse_error(text: str) -> None:
    try:
        sdp = SessionDescription.parse(text)
    except ParseError:
        return
    assert SessionDescription.parse(sdp.encode()).encode() == sdp.encode()


# --- offer/answer ---------------------------------------------------------------


def test_answer_rejects_video_and_unknown_codecs_with_port_zero() -> None:
    answer, negotiated = create_answer(SessionDescription.parse(RFC4317_OFFER), "192.0.2.20", 6000)
    audio, video = answer.media
    assert (audio.port, audio.formats[0]) == (6000, "0")
    assert "97" not in audio.formats  # iLBC is not ours
    assert (video.media, video.port, video.proto) == ("video", 0, "RTP/AVP") and video.formats
    assert negotiated.codec == RTPMap(0, "PCMU", 8000)
    assert (negotiated.remote_address, negotiated.remote_port) == ("host.atlanta.example.com", 49170)
    assert negotiated.remote_rtcp_port == 49171 and not negotiated.rtcp_mux
    assert negotiated.telephone_event is None
    # answer and offer agree when the offerer reads the answer back
    offerer_view = negotiate(SessionDescription.parse(RFC4317_OFFER), answer)
    assert offerer_view.codec == negotiated.codec and offerer_view.remote_port == 6000


def test_several_audio_lines_only_the_first_servable_is_accepted() -> None:
    offer = SessionDescription.parse(offer_text(
        "m=audio 4000 RTP/AVP 97", "a=rtpmap:97 opus/48000/2",
        "m=audio 4002 RTP/AVP 8 101", "a=rtpmap:101 telephone-event/8000",
        "m=audio 4004 RTP/AVP 0"))
    answer, negotiated = create_answer(offer, "192.0.2.20", 6000)
    assert [m.port for m in answer.media] == [0, 6000, 0]
    assert negotiated.media_index == 1 and negotiated.codec.encoding == "PCMA"
    assert negotiated.telephone_event == RTPMap(101, "telephone-event", 8000)
    assert answer.media[1].fmtp(101) == "0-16"


def test_codec_preference_is_ours_and_payload_numbers_are_the_offerers() -> None:
    offer = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 0 8 9 100",
                                                "a=rtpmap:100 telephone-event/8000"))
    _, negotiated = create_answer(offer, "192.0.2.20", 6000, AudioPolicy(codecs=("G722", "PCMA")))
    assert negotiated.codec.encoding == "G722" and negotiated.telephone_event.payload_type == 100


def test_no_common_codec_is_488() -> None:
    offer = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 18", "a=rtpmap:18 G729/8000"))
    with pytest.raises(OfferAnswerError) as info:
        create_answer(offer, "192.0.2.20", 6000)
    assert info.value.status_code == 488


@pytest.mark.parametrize(
    ("offered", "local", "answered"),
    [
        ("sendrecv", "sendrecv", "sendrecv"),
        ("sendonly", "sendrecv", "recvonly"),  # they put us on hold
        ("recvonly", "sendrecv", "sendonly"),
        ("inactive", "sendrecv", "inactive"),
        ("sendrecv", "sendonly", "sendonly"),  # we put them on hold
        ("sendonly", "sendonly", "inactive"),
        ("recvonly", "recvonly", "inactive"),
        ("sendrecv", "inactive", "inactive"),
    ],
)
def test_direction_answers(offered: str, local: str, answered: str) -> None:
    offer = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 0", f"a={offered}"))
    answer, negotiated = create_answer(offer, "192.0.2.20", 6000, AudioPolicy(direction=local))
    assert answer.media[0].direction == answered == negotiated.direction
    assert negotiate(offer, answer).direction == {"sendonly": "recvonly", "recvonly": "sendonly"}.get(
        answered, answered)


def test_hold_with_zero_address_and_resume_with_a_new_version() -> None:
    first = create_offer("192.0.2.10", 4000)
    held = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 0",
                                               session="c=IN IP4 0.0.0.0\r\n"))
    _, negotiated = create_answer(held, "192.0.2.20", 6000)
    assert negotiated.direction == "recvonly" and negotiated.on_hold
    hold = create_offer("192.0.2.10", 4000, AudioPolicy(direction="sendonly"), previous=first)
    assert hold.origin.session_id == first.origin.session_id
    assert hold.origin.session_version == first.origin.session_version + 1
    assert hold.media[0].direction == "sendonly"
    resume = create_offer("192.0.2.11", 4100, previous=hold)
    assert resume.origin.session_version == first.origin.session_version + 2
    assert resume.connection.host == "192.0.2.11" and resume.media[0].direction == "sendrecv"


def test_ptime_maxptime_and_rtcp_mux() -> None:
    offer = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 8", "a=ptime:40",
                                                "a=maxptime:30", "a=rtcp-mux"))
    answer, negotiated = create_answer(offer, "192.0.2.20", 6000)
    assert negotiated.ptime == 30 and answer.media[0].ptime == 30
    assert negotiated.rtcp_mux and negotiated.remote_rtcp_port == 4000
    assert answer.media[0].rtcp_mux
    _, no_mux = create_answer(offer, "192.0.2.20", 6000, AudioPolicy(rtcp_mux=False))
    assert not no_mux.rtcp_mux and no_mux.remote_rtcp_port == 4001


def test_srtp_policy_without_keys() -> None:
    savp = SessionDescription.parse(offer_text(
        "m=audio 4000 RTP/SAVP 0",
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"))
    with pytest.raises(OfferAnswerError):
        create_answer(savp, "192.0.2.20", 6000)  # srtp off: RTP/SAVP is not servable
    plain = SessionDescription.parse(offer_text("m=audio 4000 RTP/AVP 0"))
    with pytest.raises(OfferAnswerError):
        create_answer(plain, "192.0.2.20", 6000, AudioPolicy(srtp="required"))
    _, negotiated = create_answer(plain, "192.0.2.20", 6000, AudioPolicy(srtp="optional"))
    assert negotiated.local_crypto is None
    with pytest.raises(ValueError, match="srtp"):
        AudioPolicy(srtp="maybe")
    with pytest.raises(ValueError, match="codecs"):
        AudioPolicy(codecs=("G729",))


# --- SDES keys (needs rtpcore.srtp, merged from the SRTP branch) ----------------


def test_srtp_offer_answer_with_sdes_keys() -> None:
    srtp = pytest.importorskip("rtpcore.srtp")
    policy = AudioPolicy(srtp="required")
    offer = create_offer("192.0.2.10", 4000, policy)
    assert offer.media[0].proto == "RTP/SAVP"
    offered = [srtp.parse_crypto_attribute(v) for v in offer.media[0].attribute_values("crypto")]
    assert [(c.tag, c.suite) for c in offered] == [(1, "AES_CM_128_HMAC_SHA1_80"),
                                                   (2, "AES_CM_128_HMAC_SHA1_32")]
    answer, answerer = create_answer(SessionDescription.parse(offer.encode()), "192.0.2.20", 6000,
                                     AudioPolicy(srtp="optional"))
    assert answer.media[0].proto == "RTP/SAVP"
    (answered,) = answer.media[0].attribute_values("crypto")
    assert srtp.parse_crypto_attribute(answered) == answerer.local_crypto
    assert answerer.remote_crypto == offered[0]
    assert answerer.local_crypto.key != offered[0].key  # each side sends with its own key
    offerer = negotiate(offer, SessionDescription.parse(answer.encode()))
    assert offerer.local_crypto == offered[0] and offerer.remote_crypto == answerer.local_crypto


def test_srtp_answer_skips_unknown_suites_and_bad_lines() -> None:
    pytest.importorskip("rtpcore.srtp")
    offer = SessionDescription.parse(offer_text(
        "m=audio 4000 RTP/SAVP 0",
        "a=crypto:1 F8_128_HMAC_SHA1_80 inline:MTIzNDU2Nzg5QUJDREUwMTIzNDU2Nzg5QUJjZGVm",
        "a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:not-base64!",
        "a=crypto:3 AES_CM_128_HMAC_SHA1_32 inline:NzB4d1BINUAvLEw6UzF3WSJ+PSdFcGdUJShpX1Zj"))
    _, negotiated = create_answer(offer, "192.0.2.20", 6000, AudioPolicy(srtp="required"))
    assert (negotiated.remote_crypto.tag, negotiated.remote_crypto.suite) == (
        3, "AES_CM_128_HMAC_SHA1_32")
