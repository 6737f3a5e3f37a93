"""The sdist carries what a build from source needs, and nothing it doesn't.

Building the sdist is cheap (no compilation); installing from it compiles the
Rust core in release mode (a minute or more), so that is checked by hand
rather than on every run:
``pip install --no-build-isolation --no-deps --target DIR rtpcore-*.tar.gz``.
"""

from __future__ import annotations

import subprocess
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_sdist_holds_the_rust_workspace_and_the_typing_files(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-c", f"from setuptools import build_meta; build_meta.build_sdist({str(tmp_path)!r})"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )
    (sdist,) = tmp_path.glob("rtpcore-*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in [
        "setup.py",
        "pyproject.toml",
        "rust/Cargo.toml",
        "rust/Cargo.lock",
        "rust/src/lib.rs",
        "rust/proto/Cargo.toml",
        "rust/proto/src/rtp.rs",
        "python/rtpcore/_core.pyi",
        "python/rtpcore/py.typed",
    ]:
        assert needed in names, needed
    assert not any(n.startswith(("rust/target", "rust/fuzz")) or n.endswith(".so") for n in names)
