"""Streaming sample-rate conversion for voice: 8 kHz telephony to the 16 or
24 kHz of speech models and back, 48 kHz for WebRTC and files.

:class:`Resampler` wraps the FFT resampler of the ``rubato`` crate (windowed
sinc, Blackman-Harris squared). Push samples with ``process`` — int16 (numpy
array or any buffer) in, int16 numpy array out; or float32 numpy arrays in
-1.0..1.0 in and out — and call ``flush()`` at the end of a stream for the
tail. Output is time-aligned with the input (the filter delay is removed),
and a whole stream of ``n`` samples yields ``n * out_rate / in_rate`` samples
(rounded half up).

``quality`` sets the filter (and block) length: ``"low"`` (16 ms blocks),
``"medium"`` (32 ms), ``"high"`` (64 ms, the default: flat to 0.95 of the
lower Nyquist frequency, stopband below -135 dB, better than libsoxr's HQ on
both) or ``"very_high"`` (128 ms). ``latency`` is the block length in input
samples: output appears in whole blocks.

Rates: 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000 Hz.

>>> import numpy as np
>>> from rtpcore.resample import Resampler
>>> up = Resampler(8000, 16000)
>>> chunks = [up.process(np.zeros(160, dtype=np.int16)) for _ in range(50)]
>>> total = sum(len(c) for c in chunks) + len(up.flush())
>>> total
16000
"""

from rtpcore._core import Resampler

__all__ = ["Resampler"]
