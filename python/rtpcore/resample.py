"""Streaming sample-rate conversion for voice: 8 kHz telephony to the 16 or
24 kHz of speech models and back, 48 kHz for WebRTC and files.

:class:`Resampler` filters with the low-pass of the ``rubato`` crate's FFT
resampler (windowed sinc, Blackman-Harris squared) and changes the rate in
the frequency domain, with ``rustfft``'s transforms. Push samples with
``process`` — int16 (numpy array or any buffer) in, int16 numpy array out;
or float32 numpy arrays in -1.0..1.0 in and out — and call ``flush()`` at
the end of a stream for the tail. Output is time-aligned with the input (the filter delay is removed),
and a whole stream of ``n`` samples yields ``n * out_rate / in_rate`` samples
(rounded half up).

``quality`` sets the filter (and block) length, counted in samples of the
lower of the two rates, so these figures (fractions of the lower rate's
Nyquist frequency) hold for every pair; the stopband is below -140 dB from
the Nyquist frequency on in every mode:

* ``"low"``: 128 samples (16 ms at 8 kHz), flat to 0.80 of Nyquist;
* ``"medium"``: 256 samples (32 ms at 8 kHz), flat to 0.90;
* ``"high"`` (default): 384 samples (48 ms at 8 kHz, 24 ms at 16 kHz), flat
  to 0.94, -0.3 dB at 0.95, -2.9 dB at 0.96. libsoxr's HQ measures -2.9 dB
  at 0.95 and its stopband -131 to -141 dB (``bench/bench_resample.py``
  records both sets of figures), so the default is at least HQ on every
  measured figure;
* ``"very_high"``: 1024 samples (128 ms at 8 kHz), flat to 0.97.

The cost per sample hardly depends on the mode (the FFT's cost grows with
the log of the block); what a longer block costs is latency. ``latency`` is
two blocks in input samples: output appears a pair of blocks at a time (one
complex FFT filters both), so a stream's first output comes after two blocks
(96 ms at 8 kHz in the default mode), and how a stream is cut into calls
never changes its output. Int16 input is converted pair by pair on its way
through, so a long buffer costs no float copy of itself. For live calls the
media engine resamples with a short polyphase filter instead (3 ms of delay
with 8 kHz).

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
