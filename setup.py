"""Declares the compiled extensions only; all metadata lives in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools_rust import Binding, RustExtension

# The SIP codec is pure Python compiled a second time by Cython: the source is
# python/rtpcore/sip/_codec.py, built as rtpcore.sip._codec_c; Cython finds the
# augmenting declarations for that module as rtpcore/sip/_codec_c.pxd along
# include_path. Types come from the .pxd only (annotation_typing off), so the
# annotations in the source stay plain documentation for the pure build.
cython_extensions = cythonize(
    [
        Extension(
            "rtpcore.sip._codec_c",
            ["python/rtpcore/sip/_codec.py"],
            # Built against the stable ABI like the Rust extension (abi3,
            # Python >= 3.11), so one wheel per platform still serves every
            # CPython version and the wheel's abi3 tag stays true.
            define_macros=[("CYTHON_LIMITED_API", "1"), ("Py_LIMITED_API", "0x030B0000")],
            py_limited_api=True,
        )
    ],
    include_path=["src"],
    compiler_directives={
        "language_level": 3,
        "annotation_typing": False,
    },
)

setup(
    ext_modules=cython_extensions,
    rust_extensions=[
        RustExtension(
            "rtpcore._core",
            path="rust/Cargo.toml",
            binding=Binding.PyO3,
            debug=False,
        )
    ],
)
