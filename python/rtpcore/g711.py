"""G.711 μ-law and A-law (ITU-T G.711), bit-exact to the ITU-T G.191 reference.

Encoders take int16 samples — ``bytes``/``bytearray``/``memoryview`` in native
byte order, or a C-contiguous numpy ``int16`` array — and return one code
octet per sample as ``bytes``. Decoders take any bytes-like object (every
octet is a valid code) and return a numpy ``int16`` array.

Pass ``out=`` to write into an existing buffer instead (a ``bytearray`` or
numpy ``uint8`` array for codes, a numpy ``int16`` array or writable int16
buffer for samples); it must hold at least as many items as the input, the
first ``len(input)`` are written, and ``out`` is returned. This path does not
allocate.

The μ-law encoder follows G.191 exactly; CPython's former ``audioop`` rounds
508 negative inputs one step differently — use :mod:`rtpcore.audioop` when
byte-identity with ``audioop`` matters.

>>> import numpy as np
>>> from rtpcore import g711
>>> codes = g711.ulaw_encode(np.array([0, -1, 1000, -32768], dtype=np.int16))
>>> codes.hex()
'ff7fce00'
>>> g711.ulaw_decode(codes).tolist()
[0, 0, 988, -32124]
"""

from rtpcore._core import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]
