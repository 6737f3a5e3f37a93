"""Helpers shared by the SIP test modules: the codec builds to run over.

The codec is one source built twice (pure Python and Cython); every codec test
takes the ``codec`` fixture, parametrized over the builds available here, so
both are held to the same expectations. With RTPCORE_NO_EXTENSIONS set only
the pure build runs (the CI's extensions-off pass).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType


def codec_builds() -> list[tuple[str, ModuleType]]:
    builds = [("pure", importlib.import_module("rtpcore.sip._codec"))]
    if not os.environ.get("RTPCORE_NO_EXTENSIONS"):
        # A missing compiled build is a broken install here, not a reason to skip.
        builds.append(("cython", importlib.import_module("rtpcore.sip._codec_c")))
    return builds
