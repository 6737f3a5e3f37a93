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

from typing import TYPE_CHECKING

from rtpcore import _core
from rtpcore.errors import AudioopError as error

if TYPE_CHECKING:
    from typing_extensions import Buffer

__all__ = ["alaw2lin", "error", "lin2alaw", "lin2ulaw", "ulaw2lin"]


def lin2ulaw(fragment: Buffer, width: int) -> bytes:
    """Convert samples of ``width`` bytes to μ-law, as ``audioop.lin2ulaw``."""
    return _core.audioop_lin2ulaw(fragment, width)


def ulaw2lin(fragment: Buffer, width: int) -> bytes:
    """Convert μ-law codes to samples of ``width`` bytes, as ``audioop.ulaw2lin``."""
    return _core.audioop_ulaw2lin(fragment, width)


def lin2alaw(fragment: Buffer, width: int) -> bytes:
    """Convert samples of ``width`` bytes to A-law, as ``audioop.lin2alaw``."""
    return _core.audioop_lin2alaw(fragment, width)


def alaw2lin(fragment: Buffer, width: int) -> bytes:
    """Convert A-law codes to samples of ``width`` bytes, as ``audioop.alaw2lin``."""
    return _core.audioop_alaw2lin(fragment, width)
