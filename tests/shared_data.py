"""The one way tests find the project's shared reference data.

`../shared/` beside the repository holds test vectors, network traces and
speech samples made by independent implementations (each folder's README says
how). Set RTPCORE_SHARED to read them from elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    """The shared data directory; fails loudly when it is missing."""
    path = Path(os.environ.get("RTPCORE_SHARED", REPO.parent / "shared"))
    if not path.is_dir():
        raise FileNotFoundError(f"shared data not found at {path}; set RTPCORE_SHARED")
    return path


def shared_path(*parts: str) -> Path:
    """A file under the shared directory, e.g. shared_path("vectors", "g711", "ulaw_encode.u8")."""
    path = shared_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(path)
    return path


def shared_bytes(*parts: str) -> bytes:
    """The raw contents of a shared file."""
    return shared_path(*parts).read_bytes()


def shared_json(*parts: str) -> Any:
    """A shared JSON file, parsed."""
    return json.loads(shared_path(*parts).read_text())
