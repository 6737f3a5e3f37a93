"""In-band DTMF: generate the tones of a keypad and detect them in audio.

:func:`generate` turns digits into int16 samples (to play RFC 4733 events
into a call in-band); :class:`DTMFDetector` finds digits in a stream of int16
samples (to turn in-band tones into RFC 4733 events), following the ITU-T
Q.24 acceptance limits: tones within ±1.5 % of nominal are accepted and
tones ±3.5 % off rejected; normal twist is accepted up to 6.5 dB (rejected
beyond 8 dB) and reverse twist up to 4 dB; tones of 40 ms are accepted and
tones under ~30 ms rejected; a pause of 25 ms or more separates two digits
while a dropout up to 20 ms does not; speech does not produce digits.

``process`` returns the digits that *ended* in the samples it was given, as
:class:`DTMFEvent` (``digit``, ``start``/``end`` in seconds from the start of
the stream, also ``start_sample``/``end_sample``). ``current`` is the digit in
progress, ``(digit, start)``, for senders that start an RFC 4733 event as
soon as the tone is confirmed (about 25 ms in). ``flush()`` ends the stream.

>>> from rtpcore import dtmf
>>> detector = dtmf.DTMFDetector(8000)
>>> [e.digit for e in detector.process(dtmf.generate("42#", 8000)) + detector.flush()]
['4', '2', '#']
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from rtpcore._core import DTMFDetector, DTMFEvent, dtmf_generate

__all__ = ["DTMFDetector", "DTMFEvent", "generate"]


def generate(
    digits: str,
    sample_rate: int = 8000,
    *,
    tone_ms: float = 100.0,
    pause_ms: float = 100.0,
    low_dbfs: float = -10.0,
    high_dbfs: float = -8.0,
) -> npt.NDArray[np.int16]:
    """The int16 samples for ``digits`` (0-9, ``*``, ``#``, A-D; spaces and
    commas ignored): each tone ``tone_ms`` long at the given levels (dB
    relative to a full-scale sine, per tone), followed by ``pause_ms`` of
    silence."""
    return dtmf_generate(
        digits, sample_rate, tone_ms=tone_ms, pause_ms=pause_ms, low_dbfs=low_dbfs, high_dbfs=high_dbfs
    )
