"""RFC 3389 comfort noise: estimate a CN description from background noise,
and synthesise noise from one.

The numbers are those of the CN payload: ``level`` is the noise level in
-dBov (0..127; 0 dBov is a full-scale square wave) and ``reflection`` the
quantised reflection coefficients of an all-pole model of the noise
spectrum, one octet each (0..254, octet ``q`` meaning ``(q - 127) / 128``;
255, which is not a valid code, is read as 254). A CN payload is
``bytes([level, *reflection])``; parsing and building it on the wire is the
RTP layer's job, so these functions take and return plain ints.

>>> import numpy as np
>>> from rtpcore.cn import ComfortNoiseGenerator, estimate_comfort_noise
>>> generator = ComfortNoiseGenerator(50, [60, 160], seed=1)
>>> noise = generator.generate(8000)
>>> level, reflection = estimate_comfort_noise(noise, order=2)
>>> level
50
"""

from rtpcore._core import ComfortNoiseGenerator, estimate_comfort_noise

__all__ = ["ComfortNoiseGenerator", "estimate_comfort_noise"]
