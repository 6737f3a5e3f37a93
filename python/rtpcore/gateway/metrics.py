"""Prometheus metrics of a gateway, fed by its call listener events.

::

    metrics = GatewayMetrics()
    metrics.attach(gateway)         # a Gateway listener from now on
    metrics.render()                # the text exposition format (GET /metrics serves it)

Every gateway gets its own ``CollectorRegistry`` (two gateways in one
process, or a test next to another, never share counters). The names:

=========================================== =========================================
``rtpcore_gateway_calls_active``            calls connected now, by ``direction``
``rtpcore_gateway_calls_total``             calls connected since start, by ``direction``
``rtpcore_gateway_calls_failed_total``      calls out not answered, by ``status``
                                            (busy / no-answer / failed) and SIP ``code``
``rtpcore_gateway_call_setup_seconds``      INVITE to answer (histogram)
``rtpcore_gateway_call_duration_seconds``   answer to hang-up (histogram)
``rtpcore_gateway_call_mos``                MOS estimate of each call at hang-up (histogram)
``rtpcore_gateway_call_loss_ratio``         packet loss of each call at hang-up (histogram)
``rtpcore_gateway_call_jitter_seconds``     interarrival jitter of each call at hang-up
``rtpcore_gateway_agent_errors_total``      agent misbehaviour by ``kind`` (slow reader,
                                            malformed message, exception ...)
``rtpcore_gateway_gc_pause_seconds``        how long each collection of Python's cyclic
                                            garbage collector stopped the process, by
                                            ``generation`` (histogram; process-wide)
=========================================== =========================================

The garbage collector's pauses are there because the one thread that moves
every call's audio between the engine and the agents is the one they stop:
a full collection (generation 2) walks every object a live call keeps, and
at a few hundred calls one lasts long enough (tens of ms) to be heard as a
gap on all of them at once. They are timed from ``gc.callbacks``, installed
once per process.
"""

from __future__ import annotations

import bisect
import gc
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from rtpcore.gateway.outbound import twilio_call_status

if TYPE_CHECKING:
    from rtpcore.gateway.bridge import CallReport, GatewayCall
    from rtpcore.gateway.server import Gateway

__all__ = ["CONTENT_TYPE", "GatewayMetrics"]

_SETUP_BUCKETS = (0.025, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0)
_DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# MOS is 1..4.5 for narrowband E-model estimates; the edges split poor/fair/good.
_MOS_BUCKETS = (1.0, 2.0, 2.5, 3.0, 3.5, 3.8, 4.0, 4.2, 4.4, 4.5)
_LOSS_BUCKETS = (0.0, 0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
_JITTER_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.2, 0.5)
# A pause under a frame (20 ms) is absorbed by the queues; above it, heard.
_GC_PAUSE_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


class GatewayMetrics:
    """The gateway's Prometheus metrics (see the module doc)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.calls_active = Gauge("rtpcore_gateway_calls_active", "Calls connected now",
                                  ["direction"], registry=r)
        self.calls_total = Counter("rtpcore_gateway_calls", "Calls connected",
                                   ["direction"], registry=r)
        self.calls_failed = Counter("rtpcore_gateway_calls_failed",
                                    "Calls out that were not answered, by Twilio status and "
                                    "SIP status code", ["status", "code"], registry=r)
        self.setup_seconds = Histogram("rtpcore_gateway_call_setup_seconds",
                                       "Time from INVITE to answer", ["direction"],
                                       buckets=_SETUP_BUCKETS, registry=r)
        self.duration_seconds = Histogram("rtpcore_gateway_call_duration_seconds",
                                          "Time from answer to hang-up",
                                          buckets=_DURATION_BUCKETS, registry=r)
        self.mos = Histogram("rtpcore_gateway_call_mos", "MOS estimate of a call at hang-up",
                             buckets=_MOS_BUCKETS, registry=r)
        self.loss_ratio = Histogram("rtpcore_gateway_call_loss_ratio",
                                    "Packets lost / expected, per call at hang-up",
                                    buckets=_LOSS_BUCKETS, registry=r)
        self.jitter_seconds = Histogram("rtpcore_gateway_call_jitter_seconds",
                                        "Interarrival jitter of a call at hang-up",
                                        buckets=_JITTER_BUCKETS, registry=r)
        self.agent_errors = Counter("rtpcore_gateway_agent_errors",
                                    "Agent misbehaviour (slow reader, malformed messages, "
                                    "exceptions, dropped sockets)", ["kind"], registry=r)
        for direction in ("inbound", "outbound"):  # both series exist from the start
            self.calls_active.labels(direction)
            self.calls_total.labels(direction)
        r.register(_GCPauseCollector(GCPauses.installed()))

    def attach(self, gateway: Gateway) -> GatewayMetrics:
        """Listen to ``gateway``'s calls; returns self."""
        gateway.add_listener(self)
        return self

    def render(self) -> bytes:
        """The metrics in the Prometheus text format (``CONTENT_TYPE``)."""
        return generate_latest(self.registry)

    # --- Gateway listener -------------------------------------------------------------

    def call_started(self, call: GatewayCall) -> None:
        self.calls_active.labels(call.direction).inc()
        self.calls_total.labels(call.direction).inc()
        if call.setup_time_ms is not None:
            self.setup_seconds.labels(call.direction).observe(call.setup_time_ms / 1000)

    def call_ended(self, call: GatewayCall, report: CallReport) -> None:
        self.calls_active.labels(call.direction).dec()
        self.duration_seconds.observe(report.duration_s)
        if report.mos is not None:
            self.mos.observe(report.mos)
        self.loss_ratio.observe(report.loss_percent / 100)
        self.jitter_seconds.observe(report.jitter_ms / 1000)
        for kind, count in report.agent_errors.items():
            self.agent_errors.labels(kind).inc(count)

    def call_failed(self, call: GatewayCall, status_code: int, reason: str) -> None:
        self.calls_failed.labels(twilio_call_status(status_code), str(status_code)).inc()


class GCPauses:
    """How long the cyclic garbage collector's collections took, by
    generation, in the buckets of ``rtpcore_gateway_gc_pause_seconds``:
    one per process (``installed()``), timed from ``gc.callbacks``."""

    _instance: GCPauses | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        #: Per generation: collections per bucket (the last one: beyond
        #: the largest bound), and their total time in seconds.
        self.buckets = [[0] * (len(_GC_PAUSE_BUCKETS) + 1) for _ in range(3)]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    @classmethod
    def installed(cls) -> GCPauses:
        """The process's recorder, its callback installed on first use."""
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
                gc.callbacks.append(cls._instance._callback)
            return cls._instance

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        # Collections run on whichever thread allocated, one at a time
        # (the GIL is held throughout): start and stop pair up.
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info["generation"]
        self.seconds[generation] += pause
        self.buckets[generation][bisect.bisect_left(_GC_PAUSE_BUCKETS, pause)] += 1


class _GCPauseCollector(Collector):
    """``GCPauses`` as a histogram in a registry (each gateway's has one)."""

    def __init__(self, pauses: GCPauses) -> None:
        self._pauses = pauses

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "rtpcore_gateway_gc_pause", "How long each collection of Python's cyclic "
            "garbage collector stopped the process (process-wide)", labels=["generation"],
            unit="seconds")
        for generation in range(3):
            counts = list(self._pauses.buckets[generation])
            cumulative, total = [], 0
            for bound, count in zip((*map(str, _GC_PAUSE_BUCKETS), "+Inf"), counts, strict=True):
                total += count
                cumulative.append((bound, total))
            family.add_metric([str(generation)], cumulative, self._pauses.seconds[generation])
        yield family
