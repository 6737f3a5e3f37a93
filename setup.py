"""Declares the compiled extensions only; all metadata lives in pyproject.toml."""

from setuptools import setup
from setuptools_rust import Binding, RustExtension

setup(
    rust_extensions=[
        RustExtension(
            "rtpcore._core",
            path="rust/Cargo.toml",
            binding=Binding.PyO3,
            debug=False,
        )
    ],
)
