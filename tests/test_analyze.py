"""rtpcore analyze: figures checked against tshark, container formats,
bad files, noise, and the command line."""

from __future__ import annotations

import io
import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from rtpcore.analyze import CaptureAnalyzer, analyze, format_report
from rtpcore.cli import main
from rtpcore.demo import write_demo_capture
from rtpcore.errors import ParseError
from rtpcore.pcap import PcapWriter
from rtpcore.rtp import RTPPacket


@pytest.fixture(scope="module")
def demo_capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "demo.pcap"
    write_demo_capture(path)
    return path


def by_ssrc(report: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {s["ssrc"]: s for s in report["streams"]}


def tshark_streams(path: Path) -> dict[int, dict[str, Any]]:
    """tshark's `-z rtp,streams` rows of streams with more than one packet."""
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-o", "rtp.heuristic_rtp:TRUE", "-q", "-z", "rtp,streams"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    rows = {}
    for line in out.splitlines():
        m = re.search(
            r"(0x[0-9A-Fa-f]{8})\s+(\S+)\s+(\d+)\s+(-?\d+) \([^)]*\)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)",
            line,
        )
        if m and int(m[3]) > 1:
            rows[int(m[1], 16)] = {
                "payload": m[2],
                "packets": int(m[3]),
                "lost": int(m[4]),
                "max_delta_ms": float(m[7]),
                "mean_jitter_ms": float(m[9]),
                "max_jitter_ms": float(m[10]),
            }
    return rows


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_figures_agree_with_tshark_rtp_streams(demo_capture: Path) -> None:
    ours = by_ssrc(analyze(demo_capture))
    theirs = tshark_streams(demo_capture)
    assert set(ours) == set(theirs) and len(ours) == 3
    for ssrc, t in theirs.items():
        o = ours[ssrc]
        assert (o["packets"], o["lost"]) == (t["packets"], t["lost"]), hex(ssrc)
        # tshark prints three decimals.
        assert o["max_delta_ms"] == pytest.approx(t["max_delta_ms"], abs=0.0015)
        assert o["max_jitter_ms"] == pytest.approx(t["max_jitter_ms"], abs=0.0015)
        # tshark leaves late packets and talk-spurt starts out of its mean
        # (with a running formula whose denominator still counts them); we
        # average over every packet after the first. Equal on clean streams.
        clean = o["out_of_order"] == o["duplicates"] == 0
        assert o["mean_jitter_ms"] == pytest.approx(t["mean_jitter_ms"], abs=0.0015 if clean else 0.01)


@pytest.mark.interop
@pytest.mark.skipif(shutil.which("editcap") is None, reason="editcap is not installed")
def test_pcapng_gives_the_same_report_as_pcap(demo_capture: Path, tmp_path: Path) -> None:
    pcapng = tmp_path / "demo.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", str(demo_capture), str(pcapng)], check=True, timeout=60)
    assert pcapng.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"
    assert analyze(pcapng) == analyze(demo_capture)
    nanoseconds = tmp_path / "demo-ns.pcap"
    subprocess.run(["editcap", "-F", "nsecpcap", str(demo_capture), str(nanoseconds)], check=True, timeout=60)
    assert analyze(nanoseconds) == analyze(demo_capture)


def test_demo_streams_faults_and_rtcp(demo_capture: Path) -> None:
    report = analyze(demo_capture)
    streams = by_ssrc(report)
    caller, callee, wideband = streams[0x1A2B3C4D], streams[0x5E6F7081], streams[0x0BADCAFE]
    assert (caller["codec"], callee["codec"], wideband["codec"]) == ("PCMU", "PCMA", "G722")
    assert caller["duplicates"] > 0 and caller["out_of_order"] > 0
    assert caller["sequence_errors"] >= caller["duplicates"] + caller["out_of_order"]
    assert wideband["lost"] == 15 and wideband["destination"] == "2001:db8::20"
    assert callee["rtcp"]["sender_reports"] == 2 and callee["rtcp"]["report_blocks"] == 3
    c = report["counters"]
    assert c["rtp"] == sum(s["packets"] for s in report["streams"])
    # 40 noise datagrams (10 of them lone RTP look-alikes) and a DNS query.
    assert c["skipped_udp"] == 41
    assert c["frames"] == c["udp"] == c["rtp"] + c["rtcp"] + c["skipped_udp"]


def test_chunk_boundaries_do_not_matter(demo_capture: Path) -> None:
    data = demo_capture.read_bytes()
    whole = CaptureAnalyzer()
    whole.feed(data)
    pieces = CaptureAnalyzer()
    for at in range(0, len(data), 997):
        pieces.feed(memoryview(data)[at : at + 997])
    assert pieces.finish() == whole.finish()


def write_capture(streams: list[list[tuple[float, bytes]]]) -> bytes:
    out = io.BytesIO()
    writer = PcapWriter(out)
    events = sorted((t, i, p) for i, s in enumerate(streams) for t, p in s)
    for t, i, p in events:
        writer.write_udp(t, ("192.0.2.1", 5000 + 2 * i), ("192.0.2.2", 6000), p)
    return out.getvalue()


def rtp(seq: int, ts: int, ssrc: int = 1, pt: int = 0) -> bytes:
    return bytes(RTPPacket(payload_type=pt, sequence_number=seq, timestamp=ts, ssrc=ssrc, payload=bytes(160)))


def report_of(data: bytes, **kwargs: Any) -> dict[str, Any]:
    analyzer = CaptureAnalyzer(**kwargs)
    analyzer.feed(data)
    return analyzer.finish()


def test_dynamic_payload_types_get_jitter_only_with_a_clock_rate() -> None:
    data = write_capture([[(i * 0.02, rtp(i, i * 960, pt=96)) for i in range(10)]])
    (unknown,) = report_of(data)["streams"]
    assert (unknown["codec"], unknown["clock_rate"], unknown["max_jitter_ms"]) == (None, None, None)
    (known,) = report_of(data, clock_rates={96: 48000})["streams"]
    assert (known["clock_rate"], known["max_jitter_ms"]) == (48000, 0.0)


def test_a_stream_needs_two_consecutive_packets() -> None:
    data = write_capture([[(0.0, rtp(1, 0)), (0.02, rtp(5, 160))], [(0.0, rtp(9, 0, ssrc=2)), (0.02, rtp(10, 160, ssrc=2))]])
    report = report_of(data)
    assert [s["ssrc"] for s in report["streams"]] == [2]
    assert report["counters"]["skipped_udp"] == 2


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (b"", "header"),
        (b"not a capture at all", "header"),
        (struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + b"\x01\x02", "frame"),
    ],
)
def test_bad_files_raise_parse_error(data: bytes, field: str) -> None:
    with pytest.raises(ParseError) as info:
        report_of(data)
    assert (info.value.layer, info.value.field) == ("capture", field)


def test_garbage_frames_are_counted_not_fatal() -> None:
    out = io.BytesIO()
    writer = PcapWriter(out)
    writer.write_frame(0.0, b"\xff" * 10)  # Ethernet cut short
    writer.write_frame(0.1, bytes(12) + b"\x08\x06" + bytes(28))  # ARP
    writer.write_frame(0.2, bytes(12) + b"\x08\x00" + b"\x45" + bytes(5))  # IPv4 cut short
    writer.write_udp(0.3, ("192.0.2.1", 1), ("192.0.2.2", 2), b"\x80\xc9\x00\x09")  # RTCP-like, broken
    c = report_of(out.getvalue())["counters"]
    assert (c["frames"], c["malformed"], c["not_udp"], c["skipped_udp"], c["udp"]) == (4, 2, 1, 1, 1)


def test_finished_analyzer_refuses_more() -> None:
    analyzer = CaptureAnalyzer()
    analyzer.feed(write_capture([]))
    analyzer.finish()
    with pytest.raises(RuntimeError):
        analyzer.feed(b"")


def test_cli_text_and_json(demo_capture: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["analyze", str(demo_capture), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["streams"]) == 3
    assert main(["analyze", str(demo_capture)]) == 0
    text = capsys.readouterr().out
    assert text == format_report(report) + "\n"
    assert "0x1a2b3c4d" in text and "PCMU" in text


def test_cli_names_dynamic_payload_types(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "opus.pcap"
    path.write_bytes(write_capture([[(i * 0.02, rtp(i, i * 960, pt=111)) for i in range(5)]]))
    assert main(["analyze", str(path), "--json", "--payload-type", "111=opus/48000"]) == 0
    (stream,) = json.loads(capsys.readouterr().out)["streams"]
    assert (stream["codec"], stream["clock_rate"]) == ("opus", 48000)
    with pytest.raises(SystemExit):
        main(["analyze", str(path), "--payload-type", "opus"])


def test_cli_reports_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.pcap"
    path.write_bytes(b"garbage!")
    assert main(["analyze", str(path)]) == 1
    assert "capture header" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.pcap")]) == 1


def test_demo_command_writes_and_analyzes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "capture", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "demo.pcap").exists()
    assert "PCMU" in capsys.readouterr().out


def test_play_decodes_the_chosen_stream_through_the_jitter_buffer(tmp_path: Path) -> None:
    """`--play` writes the stream's audio: a clean μ-law stream comes out as
    the decode of exactly what was sent, after the buffer's start-up delay."""
    import wave

    import numpy as np

    from rtpcore import g711

    tone = (8000 * np.sin(2 * np.pi * 440 * np.arange(8000 * 2) / 8000)).astype(np.int16)
    encoded = g711.ulaw_encode(tone)
    packets = [
        (i * 0.02 + 0.001 * (i % 3),
         bytes(RTPPacket(payload_type=0, sequence_number=100 + i, timestamp=160 * i, ssrc=7,
                         payload=encoded[160 * i:160 * (i + 1)])))
        for i in range(100)
    ]
    noise = [(i * 0.02, rtp(i, i * 160, ssrc=9, pt=8)) for i in range(5)]
    capture = tmp_path / "call.pcap"
    capture.write_bytes(write_capture([noise, packets]))
    out = tmp_path / "call.wav"
    assert main(["analyze", str(capture), "--play", str(out), "--stream", "2"]) == 0
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (8000, 1, 2)
        played = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    sent = g711.ulaw_decode(encoded)
    starts = [i for i in range(len(played) - len(sent)) if np.array_equal(played[i:i + 160], sent[:160])]
    assert starts, "the first packet's audio is not in the output"
    assert np.array_equal(played[starts[0]:starts[0] + len(sent)], sent)
    assert out.with_suffix(".png").stat().st_size > 0


def test_play_refuses_a_stream_it_cannot_decode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    capture = tmp_path / "dyn.pcap"
    capture.write_bytes(write_capture([[(i * 0.02, rtp(i, i * 960, pt=96)) for i in range(10)]]))
    assert main(["analyze", str(capture), "--play", str(tmp_path / "x.wav")]) == 1
    assert "no G.711 or G.722 stream" in capsys.readouterr().err
