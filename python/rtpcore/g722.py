"""G.722 wideband speech (ITU-T G.722), bit-exact with spandsp, FFmpeg and
libg722.

:class:`G722Encoder` turns 16 kHz int16 samples (an even number per call)
into the 64 kbit/s octet stream of RFC 3551 — one octet per pair of samples,
so a 20 ms frame of 320 samples is 160 octets. :class:`G722Decoder` turns
octets back into samples in mode 1 (``bitrate=64000``), 2 (56000) or 3
(48000); every octet is valid and overload saturates.

Both are streaming: state carries over between calls, so coding a stream
frame by frame gives the same result as one call; ``reset()`` starts over.
Inputs and ``out=`` buffers work as in :mod:`rtpcore.g711`.

>>> import numpy as np
>>> from rtpcore.g722 import G722Decoder, G722Encoder
>>> encoder, decoder = G722Encoder(), G722Decoder()
>>> payload = encoder.encode(np.zeros(320, dtype=np.int16))
>>> len(payload), decoder.decode(payload).shape
(160, (320,))
"""

from rtpcore._core import G722Decoder, G722Encoder

__all__ = ["G722Encoder", "G722Decoder"]
