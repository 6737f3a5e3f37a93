"""Picks the SIP codec build: the Cython-compiled one, or the pure one.

Both are compiled from the same source, ``_codec.py`` (see its docstring).
The pure module is used when ``RTPCORE_NO_EXTENSIONS`` is set to a non-empty
value, on interpreters other than CPython, or when the compiled module cannot
be imported (a source checkout without a build). ``COMPILED`` says which.
"""

from __future__ import annotations

import os
import platform
from types import ModuleType


def _load() -> ModuleType:
    if not os.environ.get("RTPCORE_NO_EXTENSIONS") and platform.python_implementation() == "CPython":
        try:
            from rtpcore.sip import _codec_c  # type: ignore[attr-defined]

            return _codec_c  # type: ignore[no-any-return]
        except ImportError:
            pass
    from rtpcore.sip import _codec

    return _codec


implementation: ModuleType = _load()
COMPILED: bool = implementation.__name__.endswith("_codec_c")
