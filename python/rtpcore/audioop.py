"""Drop-in replacement for the G.711 part of the ``audioop`` module that
Python 3.13 removed: ``lin2ulaw``, ``ulaw2lin``, ``lin2alaw``, ``alaw2lin``.

Same signatures, same errors (:data:`error`, with audioop's messages) and
byte-identical output for sample widths 1, 2, 3 and 4 on every input::

    from rtpcore import audioop          # instead of: import audioop
    codes = audioop.lin2ulaw(pcm16, 2)

Note that ``audioop``'s μ-law encoder rounds negative samples differently from
the ITU-T G.191 reference (508 of the 65,536 16-bit inputs land one step
apart); this module reproduces ``audioop``, :mod:`rtpcore.g711` follows G.191.
"""

from __future__ import annotations

from rtpcore import _core
from rtpcore.errors import AudioopError as error

__all__ = ["alaw2lin", "error", "lin2alaw", "lin2ulaw", "ulaw2lin"]


# The compiled functions themselves, not Python wrappers around them: per
# 20 ms frame a wrapper's call costs a fifth of the work, and these are
# called per frame. Each one's docstring names the audioop function it
# replaces; the arguments, errors and output are audioop's.
lin2ulaw = _core.audioop_lin2ulaw
ulaw2lin = _core.audioop_ulaw2lin
lin2alaw = _core.audioop_lin2alaw
alaw2lin = _core.audioop_alaw2lin
