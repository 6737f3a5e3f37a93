"""A UDP relay that impairs the path between two media endpoints, for tests.

``ImpairmentProxy`` sits between endpoints A and B on loopback: A sends to
``proxy.port_for_a``, the proxy forwards from ``port_for_b`` to B, and B's
datagrams go back the same way, so symmetric RTP latches onto the proxy.
Each direction has its own ``Impairment`` (loss, constant delay, jitter,
reordering, duplication) drawn from its own seeded generator: the same seed
and the same traffic give the same drops, delays and duplicates, so a
failing test replays. ``stats`` counts what was done to each direction, so
a test can check the impairment really happened.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Impairment:
    """What happens to the datagrams of one direction.

    ``loss``, ``reorder`` and ``duplicate`` are probabilities per datagram.
    Every datagram is delayed by ``delay_ms`` plus a uniform draw in
    ``[0, jitter_ms)``; a reordered one is held back ``reorder_ms`` more, so
    the ones after it overtake it. A duplicate follows its original after
    its own jitter draw.
    """

    loss: float = 0.0
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder: float = 0.0
    reorder_ms: float = 50.0
    duplicate: float = 0.0

    def __post_init__(self) -> None:
        for name in ("loss", "reorder", "duplicate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name}: a probability in [0, 1], got {getattr(self, name)}")
        for name in ("delay_ms", "jitter_ms", "reorder_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative, got {getattr(self, name)}")


@dataclass
class DirectionStats:
    """What one direction's impairment did."""

    received: int = 0
    dropped: int = 0
    held_back: int = 0  # chosen to be reordered
    duplicated: int = 0
    delivered: int = 0
    out_of_order: int = 0  # delivered after a datagram that arrived later


class _Direction(asyncio.DatagramProtocol):
    """Datagrams arriving on one proxy socket, impaired and sent out of the other."""

    def __init__(self, impairment: Impairment, seed: int) -> None:
        self.impairment = impairment
        self.random = random.Random(seed)
        self.stats = DirectionStats()
        self.out: asyncio.DatagramTransport | None = None
        self.destination: tuple[str, int] | None = None
        self._arrivals = 0
        self._latest_delivered = -1

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        impairment, draw = self.impairment, self.random.random
        index = self._arrivals
        self._arrivals += 1
        self.stats.received += 1
        if draw() < impairment.loss:
            self.stats.dropped += 1
            return
        copies = 1
        if draw() < impairment.duplicate:
            copies = 2
            self.stats.duplicated += 1
        extra = 0.0
        if draw() < impairment.reorder:
            extra = impairment.reorder_ms
            self.stats.held_back += 1
        loop = asyncio.get_running_loop()
        for _ in range(copies):
            delay_ms = impairment.delay_ms + impairment.jitter_ms * draw() + extra
            loop.call_later(delay_ms / 1000, self._deliver, data, index)

    def _deliver(self, data: bytes, index: int) -> None:
        if self.out is None or self.out.is_closing() or self.destination is None:
            return
        if index < self._latest_delivered:
            self.stats.out_of_order += 1
        self._latest_delivered = max(self._latest_delivered, index)
        self.stats.delivered += 1
        self.out.sendto(data, self.destination)


class ImpairmentProxy:
    """Relays UDP between ``a`` and ``b`` (``(host, port)``), impairing
    ``a_to_b`` and ``b_to_a``. Make it with ``await ImpairmentProxy.start``."""

    def __init__(self, a_to_b: _Direction, b_to_a: _Direction,
                 side_a: asyncio.DatagramTransport, side_b: asyncio.DatagramTransport) -> None:
        self._a_to_b, self._b_to_a = a_to_b, b_to_a
        self._transports = (side_a, side_b)
        self.port_for_a = int(side_a.get_extra_info("sockname")[1])
        self.port_for_b = int(side_b.get_extra_info("sockname")[1])

    @classmethod
    async def start(cls, a: tuple[str, int], b: tuple[str, int], *,
                    a_to_b: Impairment = Impairment(), b_to_a: Impairment = Impairment(),
                    seed: int = 0, host: str = "127.0.0.1") -> ImpairmentProxy:
        loop = asyncio.get_running_loop()
        forward, backward = _Direction(a_to_b, seed * 2), _Direction(b_to_a, seed * 2 + 1)
        side_a, _ = await loop.create_datagram_endpoint(lambda: forward, local_addr=(host, 0))
        side_b, _ = await loop.create_datagram_endpoint(lambda: backward, local_addr=(host, 0))
        forward.out, forward.destination = side_b, b
        backward.out, backward.destination = side_a, a
        return cls(forward, backward, side_a, side_b)

    @property
    def stats(self) -> dict[str, DirectionStats]:
        return {"a_to_b": self._a_to_b.stats, "b_to_a": self._b_to_a.stats}

    def close(self) -> None:
        for transport in self._transports:
            transport.close()
