"""Writing UDP datagrams into a pcap file (Ethernet, IPv4 or IPv6), so that
tests and the demo can make captures that tshark and ``rtpcore analyze`` read.

>>> import io
>>> out = io.BytesIO()
>>> writer = PcapWriter(out)
>>> writer.write_udp(1.5, ("10.0.0.1", 4000), ("10.0.0.2", 5000), b"hello")
>>> len(out.getvalue())  # file header, record header, Ethernet, IPv4, UDP, payload
87
"""

from __future__ import annotations

import ipaddress
import struct
from typing import BinaryIO

__all__ = ["PcapWriter"]

_LINKTYPE_ETHERNET = 1
_ETHERTYPE_IPV4 = 0x0800
_ETHERTYPE_IPV6 = 0x86DD
_UDP = 17
# Locally administered MAC addresses: the capture is synthetic.
_SOURCE_MAC = bytes.fromhex("020000000001")
_DESTINATION_MAC = bytes.fromhex("020000000002")


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of ``data``."""
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


class PcapWriter:
    """Writes a classic pcap file (microsecond timestamps, Ethernet links)."""

    def __init__(self, out: BinaryIO, *, snaplen: int = 65535) -> None:
        self._out = out
        self._out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, _LINKTYPE_ETHERNET))

    def write_frame(self, timestamp: float, frame: bytes) -> None:
        """Writes one link-layer frame captured at ``timestamp`` (Unix seconds)."""
        seconds = int(timestamp)
        micros = round((timestamp - seconds) * 1_000_000)
        if micros == 1_000_000:
            seconds, micros = seconds + 1, 0
        self._out.write(struct.pack("<IIII", seconds, micros, len(frame), len(frame)))
        self._out.write(frame)

    def write_udp(
        self, timestamp: float, source: tuple[str, int], destination: tuple[str, int], payload: bytes
    ) -> None:
        """Writes ``payload`` as a UDP datagram from ``source`` to ``destination``
        (``(address, port)``, both IPv4 or both IPv6)."""
        src = ipaddress.ip_address(source[0])
        dst = ipaddress.ip_address(destination[0])
        if src.version != dst.version:
            raise ValueError("source and destination must both be IPv4 or both IPv6")
        length = 8 + len(payload)
        udp = struct.pack("!HHHH", source[1], destination[1], length, 0) + payload
        pseudo_header = src.packed + dst.packed + struct.pack("!HH", _UDP, length)
        udp = udp[:6] + struct.pack("!H", _checksum(pseudo_header + udp) or 0xFFFF) + udp[8:]
        if src.version == 4:
            header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0x4000, 64, _UDP, 0, src.packed, dst.packed)
            header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
            ethertype = _ETHERTYPE_IPV4
        else:
            header = struct.pack("!IHBB16s16s", 6 << 28, len(udp), _UDP, 64, src.packed, dst.packed)
            ethertype = _ETHERTYPE_IPV6
        self.write_frame(timestamp, _DESTINATION_MAC + _SOURCE_MAC + struct.pack("!H", ethertype) + header + udp)
