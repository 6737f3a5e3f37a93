"""Streaming sample-rate conversion for voice: 8 kHz telephony to the 16 or
24 kHz of speech models and back, 48 kHz for WebRTC and files.

:class:`Resampler` wraps the FFT resampler of the ``rubato`` crate (windowed
sinc, Blackman-Harris squared). Push samples with ``process`` — int16 (numpy
array or any buffer) in, int16 numpy array out; or float32 numpy arrays in
-1.0..1.0 in and out — and call ``flush()`` at the end of a stream for the
tail. Output is time-aligned with the input (the filter delay is removed),
and a whole stream of ``n`` samples yields ``n * out_rate / in_rate`` samples
(rounded half up).

``quality`` sets the filter (and block) length; figures for pairs with
8 kHz, higher rates do at least as well, and the stopband is below -140 dB
from the Nyquist frequency on in every mode:

* ``"low"``: 16 ms blocks, flat to 0.80 of the lower Nyquist frequency;
* ``"medium"``: 32 ms, flat to 0.90;
* ``"high"`` (default): 64 ms, flat to 0.95 (libsoxr's HQ is -2.9 dB there);
* ``"very_high"``: 128 ms, flat to 0.97.

``latency`` is the block length in input samples: output appears in whole
blocks, so a stream's first output comes after one block.

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
