"""RTCP: round trips of every packet type, aiortc as a differential peer,
bad framing, and buffer types."""

from __future__ import annotations

import doctest
import json
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiortc import rtp as aiortc_rtp
from hypothesis import given, settings
from hypothesis import strategies as st

import rtpcore.rtcp
import rtpcore.rtp
from rtpcore.errors import ParseError
from rtpcore.pcap import PcapWriter
from rtpcore.rtcp import (
    DLRR,
    PLI,
    App,
    Bye,
    DLRRItem,
    ExtendedReport,
    GenericNACK,
    ReceiverReferenceTime,
    ReceiverReport,
    ReportBlock,
    SDESChunk,
    SDESItemType,
    SenderReport,
    SourceDescription,
    UnknownRTCP,
    VoIPMetrics,
    XRBlock,
    build_compound,
    parse_compound,
)

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
words = st.binary(max_size=24).map(lambda b: b + bytes(-len(b) % 4))
# Bodies that RTCP padding completes to whole words on the wire.
any_length = st.binary(max_size=24)

report_blocks = st.builds(
    ReportBlock,
    ssrc=u32,
    fraction_lost=u8,
    cumulative_lost=st.integers(-(1 << 23), (1 << 23) - 1),
    highest_sequence=u32,
    jitter=u32,
    last_sr=u32,
    delay_since_last_sr=u32,
)
reports = st.lists(report_blocks, max_size=31).map(tuple)
voip_metrics = st.builds(
    VoIPMetrics,
    **{
        name: (st.integers(-128, 127) if name in ("signal_level", "noise_level") else u16 if field.type == "int" and name in (
            "burst_duration", "gap_duration", "round_trip_delay", "end_system_delay", "jb_nominal", "jb_maximum", "jb_abs_max"
        ) else u32 if name == "ssrc" else u8)
        for name, field in VoIPMetrics.__dataclass_fields__.items()
    },
)
xr_blocks = st.one_of(
    voip_metrics,
    st.builds(ReceiverReferenceTime, ntp_timestamp=st.integers(0, (1 << 64) - 1)),
    st.builds(DLRR, items=st.lists(st.builds(DLRRItem, ssrc=u32, last_rr=u32, delay_since_last_rr=u32), max_size=4).map(tuple)),
    st.builds(XRBlock, block_type=u8.filter(lambda t: t not in (4, 5, 7)), type_specific=u8, data=words),
)


def sender_reports(extension: st.SearchStrategy[bytes]) -> st.SearchStrategy[SenderReport]:
    return st.builds(
        SenderReport,
        ssrc=u32,
        ntp_timestamp=st.integers(0, (1 << 64) - 1),
        rtp_timestamp=u32,
        packet_count=u32,
        octet_count=u32,
        reports=reports,
        extension=extension,
    )


sorted_lost = st.lists(u16, max_size=40, unique=True).map(lambda s: tuple(sorted(s)))

packets = st.one_of(
    sender_reports(extension=any_length),
    st.builds(ReceiverReport, ssrc=u32, reports=reports, extension=any_length),
    st.builds(
        SourceDescription,
        chunks=st.lists(
            st.builds(
                SDESChunk,
                ssrc=u32,
                items=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), max_size=4).map(tuple),
            ),
            max_size=5,
        ).map(tuple),
    ),
    st.builds(Bye, sources=st.lists(u32, max_size=31).map(tuple), reason=st.none() | st.binary(max_size=255)),
    st.builds(App, subtype=st.integers(0, 31), ssrc=u32, name=st.binary(min_size=4, max_size=4), data=any_length),
    st.builds(GenericNACK, sender_ssrc=u32, media_ssrc=u32, lost=sorted_lost),
    st.builds(PLI, sender_ssrc=u32, media_ssrc=u32),
    st.builds(ExtendedReport, ssrc=u32, blocks=st.lists(xr_blocks, max_size=4).map(tuple)),
    st.builds(
        UnknownRTCP,
        packet_type=u8.filter(lambda t: not 200 <= t <= 207),
        count=st.integers(0, 31),
        body=any_length,
    ),
)


@settings(max_examples=150)
@given(st.lists(packets, min_size=1, max_size=4))
def test_build_serialize_parse_round_trip(compound: list[Any]) -> None:
    wire = build_compound(compound)
    assert parse_compound(wire) == compound
    assert b"".join(bytes(p) for p in compound) == wire


@given(packets)
def test_every_packet_is_whole_32_bit_words_with_a_true_length(packet: Any) -> None:
    wire = bytes(packet)
    assert len(wire) % 4 == 0
    assert wire[0] >> 6 == 2
    assert (struct.unpack_from("!H", wire, 2)[0] + 1) * 4 == len(wire)


def test_wire_layout_of_a_sender_report() -> None:
    sr = SenderReport(
        ssrc=0x01020304,
        ntp_timestamp=0x1122334455667788,
        rtp_timestamp=5,
        packet_count=6,
        octet_count=7,
        reports=(ReportBlock(ssrc=9, fraction_lost=0x40, cumulative_lost=-2, highest_sequence=0x10001),),
    )
    assert bytes(sr).hex() == (
        "81c8000c" "01020304" "1122334455667788" "00000005" "00000006" "00000007"
        "00000009" "40fffffe" "00010001" "00000000" "00000000" "00000000"
    )


def test_nack_packs_lost_packets_into_pid_and_bitmask() -> None:
    nack = GenericNACK(sender_ssrc=1, media_ssrc=2, lost=(100, 101, 116, 117, 300))
    # 100 + bits for 101 (bit 0) and 116 (bit 15); 117 starts a new entry.
    assert bytes(nack)[12:].hex() == "00648001" "00750000" "012c0000"


def test_sdes_items_and_padding() -> None:
    sdes = SourceDescription(chunks=(SDESChunk(ssrc=7, items=((SDESItemType.CNAME, b"ab"),)),))
    assert bytes(sdes).hex() == "81ca0003" "00000007" "01026162" "00000000"
    assert parse_compound(bytes(sdes))[0].chunks[0].get(SDESItemType.CNAME) == b"ab"


# What aiortc's parser handles as RFC 3550 says: it has no SR/RR profile
# extensions, and reads SDES items without 32-bit alignment, so only one
# chunk with items is comparable.
aiortc_comparable = st.one_of(
    sender_reports(extension=st.just(b"")),
    st.builds(ReceiverReport, ssrc=u32, reports=reports),
    st.builds(
        SourceDescription,
        chunks=st.builds(
            SDESChunk,
            ssrc=u32,
            items=st.lists(st.tuples(st.integers(1, 255), st.binary(max_size=255)), min_size=1, max_size=4).map(tuple),
        ).map(lambda c: (c,)),
    ),
    st.builds(Bye, sources=st.lists(u32, max_size=31).map(tuple)),
    st.builds(GenericNACK, sender_ssrc=u32, media_ssrc=u32, lost=sorted_lost),
    st.builds(PLI, sender_ssrc=u32, media_ssrc=u32),
)


@given(aiortc_comparable)
def test_aiortc_reads_what_we_write(packet: Any) -> None:
    peers = aiortc_rtp.RtcpPacket.parse(bytes(packet))
    (peer,) = peers
    if isinstance(packet, SenderReport):
        info = peer.sender_info
        assert (peer.ssrc, info.ntp_timestamp, info.rtp_timestamp, info.packet_count, info.octet_count) == (
            packet.ssrc, packet.ntp_timestamp, packet.rtp_timestamp, packet.packet_count, packet.octet_count)
    if isinstance(packet, (SenderReport, ReceiverReport)):
        assert [(r.ssrc, r.fraction_lost, r.packets_lost, r.highest_sequence, r.jitter, r.lsr, r.dlsr) for r in peer.reports] == [
            (r.ssrc, r.fraction_lost, r.cumulative_lost, r.highest_sequence, r.jitter, r.last_sr, r.delay_since_last_sr)
            for r in packet.reports
        ]
    elif isinstance(packet, SourceDescription):
        assert [(c.ssrc, list(c.items)) for c in peer.chunks] == [(c.ssrc, list(c.items)) for c in packet.chunks]
    elif isinstance(packet, Bye):
        assert peer.sources == list(packet.sources)
    elif isinstance(packet, GenericNACK):
        assert (peer.fmt, peer.ssrc, peer.media_ssrc, peer.lost) == (1, packet.sender_ssrc, packet.media_ssrc, list(packet.lost))
    elif isinstance(packet, PLI):
        assert (peer.fmt, peer.ssrc, peer.media_ssrc, peer.fci) == (1, packet.sender_ssrc, packet.media_ssrc, b"")


@given(u32, u32, sorted_lost, st.lists(st.tuples(u32, u8, st.integers(0, (1 << 23) - 1), u32, u32, u32, u32), max_size=5))
def test_we_read_what_aiortc_writes(ssrc: int, media: int, lost: tuple[int, ...], infos: list[tuple[int, ...]]) -> None:
    receiver_infos = [aiortc_rtp.RtcpReceiverInfo(*info) for info in infos]
    wire = (
        bytes(aiortc_rtp.RtcpRrPacket(ssrc=ssrc, reports=receiver_infos))
        + bytes(aiortc_rtp.RtcpRtpfbPacket(fmt=1, ssrc=ssrc, media_ssrc=media, lost=list(lost)))
        + bytes(aiortc_rtp.RtcpPsfbPacket(fmt=1, ssrc=ssrc, media_ssrc=media))
        + bytes(aiortc_rtp.RtcpByePacket(sources=[ssrc, media]))
        + bytes(aiortc_rtp.RtcpSdesPacket(chunks=[aiortc_rtp.RtcpSourceInfo(ssrc=ssrc, items=[(1, b"cname")])]))
    )
    assert parse_compound(wire) == [
        ReceiverReport(ssrc=ssrc, reports=tuple(ReportBlock(*info) for info in infos)),
        GenericNACK(sender_ssrc=ssrc, media_ssrc=media, lost=lost),
        PLI(sender_ssrc=ssrc, media_ssrc=media),
        Bye(sources=(ssrc, media)),
        SourceDescription(chunks=(SDESChunk(ssrc=ssrc, items=((1, b"cname"),)),)),
    ]


def rr(ssrc: int = 1) -> bytes:
    return bytes(ReceiverReport(ssrc=ssrc, reports=(ReportBlock(ssrc=2),)))


@pytest.mark.parametrize(
    ("wire", "field", "offset"),
    [
        (b"", "header", 0),
        (b"\x81\xc9\x00", "header", 0),
        (b"\x41\xc9\x00\x01\x00\x00\x00\x01", "version", 0),
        (rr()[:-4], "length", 2),
        (rr() + b"\x80\xc9\x00\x05", "length", 34),
        (bytes([0x82]) + rr()[1:], "report block", 32),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x00", "padding", 7),
        (b"\xa0\xc9\x00\x01\x00\x00\x00\x05", "padding", 7),
        (b"\x81\xca\x00\x02\x00\x00\x00\x01\x01\x09abc", "sdes item", 10),
        (b"\x81\xce\x00\x03" + bytes(12), "fci", 12),
        (b"\x80\xcf\x00\x02\x00\x00\x00\x01\x07\x00\x00\x08", "xr block length", 10),
        (b"\x80\xcf\x00\x03\x00\x00\x00\x01\x07\x00\x00\x01\x00\x00\x00\x00", "xr block length", 10),
        (b"\x80\xcf\x00\x03\x00\x00\x00\x01\x04\x00\x00\x01\x00\x00\x00\x00", "xr block length", 10),
        (b"\x80\xcf\x00\x03\x00\x00\x00\x01\x05\x00\x00\x01\x00\x00\x00\x00", "xr block length", 10),
    ],
)
def test_bad_framing_raises_precise_errors(wire: bytes, field: str, offset: int) -> None:
    with pytest.raises(ParseError) as info:
        parse_compound(wire)
    assert (info.value.layer, info.value.field, info.value.offset) == ("rtcp", field, offset)


def test_padding_is_removed_and_added_where_a_body_needs_it() -> None:
    padded = b"\xa0\xc9\x00\x02\x00\x00\x00\x07\x00\x00\x00\x04"
    assert parse_compound(padded) == [ReceiverReport(ssrc=7)]
    assert bytes(ReceiverReport(ssrc=7)) == b"\x80\xc9\x00\x01\x00\x00\x00\x07"
    app = App(subtype=0, ssrc=1, name=b"demo", data=b"xyz")
    assert bytes(app).hex() == "a0cc0003" "00000001" "64656d6f" "78797a01"
    assert parse_compound(bytes(app)) == [app]


def test_every_truncation_is_an_error() -> None:
    sr = SenderReport(ssrc=1, reports=(ReportBlock(ssrc=2),))
    wire = build_compound([sr, Bye(sources=(1,), reason=b"bye")])
    for n in range(len(wire)):
        if n == len(bytes(sr)):
            assert parse_compound(wire[:n]) == [sr]
            continue
        with pytest.raises(ParseError):
            parse_compound(wire[:n])


@settings(max_examples=300)
@given(st.binary(max_size=64))
def test_garbage_either_parses_or_raises_parse_error(data: bytes) -> None:
    try:
        parsed = parse_compound(data)
    except ParseError as e:
        assert e.layer == "rtcp" and e.offset is not None and 0 <= e.offset <= len(data)
        return
    # Whatever parses writes back to something that parses the same.
    assert parse_compound(build_compound(parsed)) == parsed


@pytest.mark.parametrize(
    ("packet", "word"),
    [
        (Bye(sources=tuple(range(32))), "sources"),
        (ReceiverReport(ssrc=1, reports=(ReportBlock(ssrc=1, cumulative_lost=1 << 23),)), "cumulative_lost"),
        (ReceiverReport(ssrc=1 << 32), "ssrc"),
        (ReceiverReport(ssrc=1 << 70), "ssrc"),
        (SenderReport(ssrc=1, ntp_timestamp=1 << 64), "ntp_timestamp"),
        (App(subtype=32, ssrc=1, name=b"abcd"), "subtype"),
        (App(subtype=1, ssrc=1, name=b"abc"), "name"),
        (SourceDescription(chunks=(SDESChunk(ssrc=1, items=((1, b"x" * 256),)),)), "255"),
        (SourceDescription(chunks=(SDESChunk(ssrc=1, items=((0, b"x"),)),)), "end-of-chunk"),
        (ExtendedReport(ssrc=1, blocks=(VoIPMetrics(ssrc=1, signal_level=200),)), "signal_level"),
        (GenericNACK(sender_ssrc=1, media_ssrc=1, lost=(70000,)), "lost"),
        (ExtendedReport(ssrc=1, blocks=(XRBlock(block_type=42, data=b"abc"),)), "data"),
    ],
)
def test_building_names_the_bad_field(packet: Any, word: str) -> None:
    with pytest.raises(ValueError, match=word):
        bytes(packet)


@pytest.mark.parametrize("convert", [bytes, bytearray, memoryview, lambda b: np.frombuffer(b, dtype=np.uint8)])
def test_every_buffer_type_parses_alike(convert: Any) -> None:
    wire = build_compound([ReceiverReport(ssrc=3), PLI(sender_ssrc=3, media_ssrc=4)])
    assert parse_compound(convert(wire)) == parse_compound(wire)
    with pytest.raises(ParseError):
        parse_compound(convert(wire[:-1]))


def test_module_examples() -> None:
    assert doctest.testmod(rtpcore.rtcp).failed == 0
    assert doctest.testmod(rtpcore.rtp).failed == 0


def flatten(node: Any, into: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """tshark's JSON tree as {field: [values in order]}."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, (dict, list)):
                flatten(value, into)
            if not isinstance(value, dict):
                for v in value if isinstance(value, list) else [value]:
                    if not isinstance(v, (dict, list)):
                        into.setdefault(key, []).append(v)
    elif isinstance(node, list):
        for item in node:
            flatten(item, into)
    return into


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_tshark_dissects_what_we_build(tmp_path: Path) -> None:
    compound = [
        SenderReport(
            ssrc=0x11111111, ntp_timestamp=0xE1A2B3C4_80000000, rtp_timestamp=8000, packet_count=50, octet_count=8000,
            reports=(ReportBlock(ssrc=0x22222222, fraction_lost=64, cumulative_lost=-3, highest_sequence=70000,
                                 jitter=77, last_sr=0x1234, delay_since_last_sr=65536),),
        ),
        SourceDescription(chunks=(SDESChunk(ssrc=0x11111111, items=((1, b"alice@example.com"), (6, b"rtpcore"))),)),
        Bye(sources=(0x11111111,), reason=b"done"),
        App(subtype=3, ssrc=0x11111111, name=b"TEST", data=b"abcd"),
        GenericNACK(sender_ssrc=0x11111111, media_ssrc=0x22222222, lost=(100, 101, 116, 200)),
        PLI(sender_ssrc=0x11111111, media_ssrc=0x22222222),
        ExtendedReport(ssrc=0x11111111, blocks=(VoIPMetrics(ssrc=0x22222222, loss_rate=10, mos_lq=41, r_factor=90,
                                                             signal_level=-20, noise_level=-70, jb_nominal=40),
                                                 ReceiverReferenceTime(ntp_timestamp=0xE1A2B3C4_00000000),
                                                 DLRR(items=(DLRRItem(ssrc=0x33333333, last_rr=0x1234, delay_since_last_rr=655),)))),
    ]
    path = tmp_path / "rtcp.pcap"
    with open(path, "wb") as f:
        PcapWriter(f).write_udp(1.0, ("10.0.0.1", 5001), ("10.0.0.2", 6001), build_compound(compound))
    out = subprocess.run(
        ["tshark", "-r", str(path), "-d", "udp.port==5001,rtcp", "-T", "json", "--no-duplicate-keys"],
        capture_output=True, text=True, timeout=60, check=True,
    ).stdout
    packets = json.loads(out)[0]["_source"]["layers"]["rtcp"]
    fields = [flatten(p, {}) for p in packets]
    assert [f["rtcp.pt"] for f in fields] == [[str(pt)] for pt in (200, 202, 203, 204, 205, 206, 207)]
    assert all(f["rtcp.length_check"] == ["1"] for f in fields[-1:])
    sr, sdes, bye, app, nack, pli, xr = fields
    assert (sr["rtcp.timestamp.ntp.msw"], sr["rtcp.timestamp.ntp.lsw"], sr["rtcp.sender.packetcount"]) == (
        ["3785536452"], ["2147483648"], ["50"])
    assert (sr["rtcp.ssrc.fraction"], sr["rtcp.ssrc.cum_nr"], sr["rtcp.ssrc.ext_high"], sr["rtcp.ssrc.dlsr"]) == (
        ["64"], ["-3"], ["70000"], ["65536"])
    assert sdes["rtcp.sdes.text"] == ["alice@example.com", "rtpcore"]
    assert bye["rtcp.sdes.text"] == ["done"]
    assert (app["rtcp.app.name"], app["rtcp.app.subtype"]) == (["TEST"], ["3"])
    # tshark lists each entry's PID and the packets its bitmask names.
    assert nack["rtcp.rtpfb.nack_blp"] == ["0x8001", "0x0000"]
    assert sorted(nack["rtcp.rtpfb.nack_pid"], key=int) == ["100", "101", "116", "200"]
    assert (pli["rtcp.senderssrc"], pli["rtcp.mediassrc"]) == (["0x11111111"], ["0x22222222"])
    assert (xr["rtcp.xr.voipmetrics.moslq"], xr["rtcp.xr.voipmetrics.signallevel"], xr["rtcp.xr.voipmetrics.jbnominal"]) == (
        ["4.1"], ["-20"], ["40"])
    assert xr["rtcp.xr.bt"] == ["7", "4", "5"]
    assert (xr["rtcp.xr.lrr"], xr["rtcp.xr.dlrr"]) == (["4660"], ["655"])
