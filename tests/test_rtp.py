"""RTP packets: round trips, aiortc as a differential peer, bad input,
buffer types, batch parsing, unwrapping and demultiplexing."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import ParseError
from rtpcore.rtp import (
    RTPPacket,
    SequenceUnwrapper,
    TimestampUnwrapper,
    classify,
    parse_batch,
)

u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
one_byte_elements = st.dictionaries(st.integers(1, 14), st.binary(min_size=1, max_size=16), max_size=6)
two_byte_elements = st.dictionaries(st.integers(1, 255), st.binary(max_size=40), max_size=6)


@st.composite
def packet_fields(draw: st.DrawFn) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "payload_type": draw(st.integers(0, 127)),
        "sequence_number": draw(u16),
        "timestamp": draw(u32),
        "ssrc": draw(u32),
        "marker": draw(st.booleans()),
        "csrc": tuple(draw(st.lists(u32, max_size=15))),
        "payload": draw(st.binary(max_size=300)),
        "padding": draw(st.integers(0, 255)),
    }
    kind = draw(st.sampled_from(["none", "one-byte", "two-byte", "raw"]))
    if kind == "one-byte":
        fields["extensions"] = draw(one_byte_elements)
        fields["extension_profile"] = 0xBEDE
    elif kind == "two-byte":
        fields["extensions"] = draw(two_byte_elements)
        fields["extension_profile"] = 0x1000 | draw(st.integers(0, 15))
    elif kind == "raw":
        fields["extension_profile"] = draw(u16.filter(lambda p: p != 0xBEDE and p & 0xFFF0 != 0x1000))
        fields["extension_data"] = draw(st.binary(max_size=64).map(lambda b: b + bytes(-len(b) % 4)))
    return fields


def observed(pkt: RTPPacket) -> dict[str, Any]:
    got = {
        "payload_type": pkt.payload_type,
        "sequence_number": pkt.sequence_number,
        "timestamp": pkt.timestamp,
        "ssrc": pkt.ssrc,
        "marker": pkt.marker,
        "csrc": pkt.csrc,
        "payload": pkt.payload,
        "padding": pkt.padding,
    }
    if pkt.extension_profile is not None:
        got["extension_profile"] = pkt.extension_profile
        if pkt.extension_profile == 0xBEDE or pkt.extension_profile & 0xFFF0 == 0x1000:
            got["extensions"] = pkt.extensions
        else:
            got["extension_data"] = pkt.extension_data
    return got


@given(packet_fields())
def test_build_serialize_parse_round_trip(fields: dict[str, Any]) -> None:
    pkt = RTPPacket(**fields)
    wire = bytes(pkt)
    again = RTPPacket.parse(wire)
    assert observed(again) == fields
    assert again == pkt and hash(again) == hash(pkt)
    assert len(pkt) == len(wire)
    assert pkt.serialize() == wire == bytes(memoryview(pkt))
    assert pkt.version == 2


@given(packet_fields())
def test_aiortc_reads_what_we_write(fields: dict[str, Any]) -> None:
    wire = bytes(RTPPacket(**fields))
    peer = aiortc_rtp.RtpPacket.parse(wire)
    assert (peer.version, peer.marker, peer.payload_type) == (2, int(fields["marker"]), fields["payload_type"])
    assert (peer.sequence_number, peer.timestamp, peer.ssrc) == (
        fields["sequence_number"],
        fields["timestamp"],
        fields["ssrc"],
    )
    assert tuple(peer.csrc) == fields["csrc"]
    assert peer.payload == fields["payload"]
    assert peer.padding_size == fields["padding"]
    if fields.get("extension_profile") == 0xBEDE:
        ext = RTPPacket.parse(wire).extension_data
        assert ext is not None
        assert dict(aiortc_rtp.unpack_header_extensions(0xBEDE, ext)) == fields["extensions"]


EXTENSION_URIS = {
    "mid": (1, "urn:ietf:params:rtp-hdrext:sdes:mid", "a0", b"a0"),
    "abs_send_time": (
        2,
        "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        0x123456,
        b"\x12\x34\x56",
    ),
    "audio_level": (3, "urn:ietf:params:rtp-hdrext:ssrc-audio-level", (True, 42), bytes([0x80 | 42])),
    "transport_sequence_number": (
        4,
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
        7,
        b"\x00\x07",
    ),
}


def aiortc_extensions_map() -> aiortc_rtp.HeaderExtensionsMap:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters

    extensions_map = aiortc_rtp.HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=ext_id, uri=uri) for ext_id, uri, _, _ in EXTENSION_URIS.values()
            ]
        )
    )
    return extensions_map


@given(
    st.integers(0, 127),
    st.booleans(),
    u16,
    u32,
    u32,
    st.binary(max_size=200),
    st.lists(st.sampled_from(sorted(EXTENSION_URIS)), unique=True),
)
def test_we_read_what_aiortc_writes(
    pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes, ext_names: list[str]
) -> None:
    peer = aiortc_rtp.RtpPacket(
        payload_type=pt, marker=int(marker), sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=payload
    )
    expected = {}
    for name in ext_names:
        ext_id, _, value, raw = EXTENSION_URIS[name]
        setattr(peer.extensions, name, value)
        expected[ext_id] = raw
    pkt = RTPPacket.parse(peer.serialize(aiortc_extensions_map()))
    assert (pkt.payload_type, pkt.marker, pkt.sequence_number, pkt.timestamp, pkt.ssrc) == (
        pt,
        marker,
        seq,
        ts,
        ssrc,
    )
    assert pkt.payload == payload
    assert pkt.extensions == expected
    for ext_id, raw in expected.items():
        assert pkt.extension(ext_id) == raw


def test_rfc8285_forms_on_the_wire() -> None:
    one = bytes(RTPPacket(extensions={1: b"\xaa", 2: b"\x01\x02"}))
    # 0xBEDE, 2 words: [id1 len0][aa][id2 len1][01][02] + 3 padding bytes.
    assert one[12:] == bytes.fromhex("bede0002") + bytes.fromhex("10aa210102000000")
    two = bytes(RTPPacket(extensions={1: b"", 20: b"xy"}))
    assert two[12:] == bytes.fromhex("10000002") + bytes.fromhex("0100") + bytes.fromhex("14027879") + bytes(2)
    with_appbits = RTPPacket(extensions={3: b"z"}, extension_profile=0x1007)
    assert with_appbits.extension_profile == 0x1007 and with_appbits.extension(3) == b"z"
    assert RTPPacket().extension_profile is None and RTPPacket().extensions == {}


def test_one_byte_padding_and_stop_id() -> None:
    ext = bytes([0x10, 0xAA, 0x00, 0x00, 0x21, 1, 2, 0xF0, 0x10, 0xBB, 0, 0])
    wire = bytes(RTPPacket(extension_profile=0x1234, extension_data=ext))
    wire = wire[:12] + b"\xbe\xde" + wire[14:]
    pkt = RTPPacket.parse(wire)
    # Id 15 ends the block: the element after it is not read.
    assert pkt.extensions == {1: b"\xaa", 2: b"\x01\x02"}
    assert pkt.extension(1) == b"\xaa" and pkt.extension(9) is None


def test_replace_changes_only_what_it_is_told() -> None:
    pkt = RTPPacket(payload_type=8, sequence_number=5, ssrc=9, extensions={1: b"a"}, payload=b"hi", padding=4)
    moved = pkt.replace(sequence_number=6, ssrc=10)
    assert (moved.sequence_number, moved.ssrc) == (6, 10)
    assert (moved.payload, moved.extensions, moved.padding, moved.payload_type) == (b"hi", {1: b"a"}, 4, 8)
    # New elements that need the two-byte form get it.
    longer = pkt.replace(extensions={1: b"x" * 40})
    assert longer.extension_profile == 0x1000 and longer.extension(1) == b"x" * 40
    with pytest.raises(ValueError, match="no field"):
        pkt.replace(colour="red")


@pytest.mark.parametrize(
    ("kwargs", "word"),
    [
        ({"payload_type": 128}, "payload_type"),
        ({"sequence_number": 65536}, "sequence_number"),
        ({"sequence_number": -1}, "sequence_number"),
        ({"timestamp": 1 << 32}, "timestamp"),
        ({"ssrc": 1 << 70}, "ssrc"),
        ({"csrc": [-(1 << 70)]}, "csrc"),
        ({"csrc": list(range(16))}, "csrc"),
        ({"padding": 256}, "padding"),
        ({"extensions": {15: b"x", 0: b"y"}}, "id 0"),
        ({"extensions": {1: b"x" * 300}}, "at most 255"),
        ({"extensions": {1: b"x"}, "extension_profile": 0xBEDE, "extension_data": b"abcd"}, "not both"),
        ({"extension_data": b"abcd"}, "extension_profile"),
        ({"extension_data": b"abc", "extension_profile": 5}, "extension_data"),
        ({"extensions": {1: b"x" * 17}, "extension_profile": 0xBEDE}, "one-byte"),
    ],
)
def test_constructor_names_the_bad_argument(kwargs: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        RTPPacket(**kwargs)


def test_constructor_rejects_non_ints_naming_them() -> None:
    with pytest.raises(TypeError, match="ssrc"):
        RTPPacket(ssrc="1")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="sequence_number"):
        RTPPacket().replace(sequence_number=1.5)
    with pytest.raises(ValueError, match="sequence_number"):
        SequenceUnwrapper().unwrap(1 << 16)


def test_constructor_rejects_non_buffers() -> None:
    with pytest.raises(TypeError, match="payload"):
        RTPPacket(payload="text")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="data"):
        RTPPacket.parse("text")  # type: ignore[arg-type]


def header(first: int = 0x80, second: int = 0) -> bytes:
    return bytes([first, second]) + struct.pack("!HII", 1, 2, 3)


@pytest.mark.parametrize(
    ("wire", "layer", "field", "offset"),
    [
        (b"", "rtp", "header", 0),
        (header()[:11], "rtp", "header", 0),
        (header(0x40), "rtp", "version", 0),
        (header(0xC0), "rtp", "version", 0),
        (header(0x82) + b"\0\0\0\1", "rtp", "csrc", 12),
        (header(0x90) + b"\xbe\xde", "rtp", "extension", 12),
        (header(0x90) + b"\xbe\xde\x00\x02" + b"\x10\xaa\0\0", "rtp", "extension length", 14),
        (header(0x90) + b"\xbe\xde\x00\x01" + b"\x10\xaa\x23\x00", "rtp-extension", "element length", 18),
        (header(0x90) + b"\x10\x00\x00\x01" + b"\x00\x00\x00\x07", "rtp-extension", "element length", 20),
        (header(0xA0), "rtp", "padding", 11),
        (header(0xA0) + b"ab\0", "rtp", "padding", 14),
        (header(0xA0) + b"ab\4", "rtp", "padding", 14),
    ],
)
def test_bad_packets_raise_precise_errors(wire: bytes, layer: str, field: str, offset: int) -> None:
    with pytest.raises(ParseError) as info:
        RTPPacket.parse(wire)
    assert (info.value.layer, info.value.field, info.value.offset) == (layer, field, offset)
    assert isinstance(info.value, ValueError)


def test_every_truncation_of_the_header_is_rejected() -> None:
    wire = bytes(RTPPacket(csrc=[1, 2], extensions={1: b"abc", 2: b"d"}, payload=b"xyz"))
    header_len = len(wire) - 3
    for n in range(header_len):
        with pytest.raises(ParseError):
            RTPPacket.parse(wire[:n])
    for n in range(header_len, len(wire) + 1):
        assert RTPPacket.parse(wire[:n]).payload == b"xyz"[: n - header_len]


@settings(max_examples=300)
@given(st.binary(max_size=80))
def test_garbage_either_parses_or_raises_parse_error(data: bytes) -> None:
    try:
        pkt = RTPPacket.parse(data)
    except ParseError as e:
        assert e.offset is not None and 0 <= e.offset <= len(data)
        return
    assert bytes(pkt) == data
    peer = aiortc_rtp.RtpPacket.parse(data)
    assert (peer.sequence_number, peer.payload, peer.padding_size) == (
        pkt.sequence_number,
        pkt.payload,
        pkt.padding,
    )


def buffer_kinds(data: bytes) -> list[Any]:
    return [
        data,
        bytearray(data),
        memoryview(data),
        memoryview(bytearray(data)),
        np.frombuffer(data, dtype=np.uint8),
        np.frombuffer(data, dtype=np.uint8).copy(),
    ]


@pytest.mark.parametrize("kind", range(6))
def test_every_buffer_type_parses_alike(kind: int) -> None:
    wire = bytes(RTPPacket(payload_type=9, csrc=[7], extensions={4: b"q"}, payload=b"abc", padding=2))
    pkt = RTPPacket.parse(buffer_kinds(wire)[kind])
    assert pkt == RTPPacket.parse(wire)
    bad = buffer_kinds(wire[:13])[kind]
    with pytest.raises(ParseError) as info:
        RTPPacket.parse(bad)
    assert info.value.field == "csrc"
    assert RTPPacket(payload=buffer_kinds(b"xyz")[kind]).payload == b"xyz"


def test_a_parsed_bytes_object_is_shared_and_a_bytearray_copied() -> None:
    wire = bytes(RTPPacket(payload=b"abc"))
    assert bytes(RTPPacket.parse(wire)) is wire
    mutable = bytearray(wire)
    pkt = RTPPacket.parse(mutable)
    mutable[-1] = ord("z")
    assert pkt.payload == b"abc"


def test_batch_parse_matches_single_parses() -> None:
    wires = [bytes(RTPPacket(sequence_number=i, payload=bytes([i]) * i)) for i in range(50)]
    batch = parse_batch(wires)
    assert batch == [RTPPacket.parse(w) for w in wires]
    assert parse_batch(iter(buffer_kinds(wires[3]))) == [batch[3]] * 6
    mixed = [wires[0], b"\x00junk", wires[1]]
    assert parse_batch(mixed, strict=False) == [batch[0], None, batch[1]]
    with pytest.raises(ParseError, match="datagram 1") as info:
        parse_batch(mixed)
    assert info.value.field == "header"
    with pytest.raises(TypeError):
        parse_batch([wires[0], 5])  # type: ignore[list-item]
    assert parse_batch([]) == []


@given(st.integers(0, 0xFFFF), st.lists(st.integers(-3000, 3000), max_size=300))
def test_sequence_unwrapping_recovers_the_true_count(start: int, steps: list[int]) -> None:
    unwrapper = SequenceUnwrapper()
    true = start
    assert unwrapper.unwrap(start) == start
    highest = start
    for step in steps:
        if true + step < 0:
            continue
        true += step
        got = unwrapper.unwrap(true & 0xFFFF)
        # Close to the highest value seen, the extension is exact; never below 0.
        assert got == true
        highest = max(highest, true)
        assert unwrapper.highest == highest


def test_timestamp_unwrapping_across_the_32_bit_wrap() -> None:
    unwrapper = TimestampUnwrapper()
    assert unwrapper.highest is None
    values = [0xFFFFFF00, 0xFFFFFFA0, 0x40, 0xFFFFFFF0, 0x1E0]
    assert [unwrapper.unwrap(v) for v in values] == [
        0xFFFFFF00,
        0xFFFFFFA0,
        (1 << 32) + 0x40,
        0xFFFFFFF0,
        (1 << 32) + 0x1E0,
    ]
    with pytest.raises(ValueError, match="timestamp"):
        unwrapper.unwrap(1 << 32)


def test_classify_follows_rfc5761_and_rfc7983() -> None:
    rtp = bytes(RTPPacket(payload_type=0))
    assert classify(rtp) == "rtp"
    assert classify(bytes(RTPPacket(payload_type=0x48, marker=True))) == "rtcp"
    assert classify(bytes([0x81, 200]) + bytes(26)) == "rtcp"
    assert classify(b"\x00\x01" + bytes(18)) == "stun"
    assert classify(b"\x16\xfe\xfd" + bytes(10)) == "dtls"
    assert classify(b"") == "unknown"
    assert classify(memoryview(rtp)) == "rtp"


def test_a_packet_is_a_read_only_buffer_of_its_wire_bytes() -> None:
    pkt = RTPPacket(payload_type=8, payload=b"abc", ssrc=5)
    view = memoryview(pkt)  # type: ignore[arg-type]
    assert view.readonly and view.tobytes() == bytes(pkt)
    with pytest.raises(TypeError):
        view[0] = 0
    assert RTPPacket.parse(pkt) == pkt  # type: ignore[arg-type]
    del pkt
    # The view keeps the packet, and so its bytes, alive.
    assert view.tobytes()[12:] == b"abc"


def test_packets_pickle_as_their_wire_bytes() -> None:
    import pickle

    pkt = RTPPacket(payload_type=96, csrc=[1], extensions={2: b"x"}, payload=b"data", padding=4)
    assert pickle.loads(pickle.dumps(pkt)) == pkt
