"""How the G.711 and audioop builtins are called: every call shape gives the
same answer, argument errors are worded as PyO3 words them, the functions
introspect and pickle like other builtins, and no call leaks a reference.

Per-frame calls (``f(a)``, ``f(a, b)``, ``f(a, out=b)``) take a direct entry
that skips PyO3's argument parsing (``rust/src/fastcall.rs``); every other
shape goes through the PyO3 function, so both routes are exercised here.
"""

from __future__ import annotations

import inspect
import pickle
import sys
import warnings
from collections.abc import Callable

import numpy as np
import pytest
from rtpcore import _core, audioop, g711

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop as stdlib_audioop

PCM = np.array([0, 1, -1, 1234, -1234, 32767, -32768, 77, 5, -5], dtype=np.int16)
CODES = bytes(range(0, 256, 25))


def encode_shapes(encode: Callable[..., bytes], out_len: int) -> dict[str, Callable[[], bytes]]:
    def into(call: Callable[[bytearray], object]) -> Callable[[], bytes]:
        def run() -> bytes:
            out = bytearray(out_len)
            assert call(out) is out
            return bytes(out)

        return run

    return {
        "f(pcm)": lambda: encode(PCM),
        "f(pcm, None)": lambda: encode(PCM, None),
        "f(pcm, out=None)": lambda: encode(PCM, out=None),
        "f(pcm=pcm)": lambda: encode(pcm=PCM),
        "f(pcm=pcm, out=None)": lambda: encode(pcm=PCM, out=None),
        "f(out=None, pcm=pcm)": lambda: encode(out=None, pcm=PCM),
        "f(pcm, out)": into(lambda out: encode(PCM, out)),
        "f(pcm, out=out)": into(lambda out: encode(PCM, out=out)),
        "f(pcm=pcm, out=out)": into(lambda out: encode(pcm=PCM, out=out)),
    }


def decode_shapes(decode: Callable[..., np.ndarray], out_len: int) -> dict[str, Callable[[], np.ndarray]]:
    def into(call: Callable[[np.ndarray], object]) -> Callable[[], np.ndarray]:
        def run() -> np.ndarray:
            out = np.empty(out_len, np.int16)
            assert call(out) is out
            return out

        return run

    return {
        "f(data)": lambda: decode(CODES),
        "f(data, None)": lambda: decode(CODES, None),
        "f(data, out=None)": lambda: decode(CODES, out=None),
        "f(data=data)": lambda: decode(data=CODES),
        "f(out=None, data=data)": lambda: decode(out=None, data=CODES),
        "f(data, out)": into(lambda out: decode(CODES, out)),
        "f(data, out=out)": into(lambda out: decode(CODES, out=out)),
        "f(data=data, out=out)": into(lambda out: decode(data=CODES, out=out)),
    }


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_every_call_shape_encodes_alike(law: str) -> None:
    encode = getattr(g711, f"{law}_encode")
    expected = bytes(getattr(stdlib_audioop, f"lin2{law}")(PCM.tobytes(), 2)) if law == "alaw" else None
    results = {shape: run() for shape, run in encode_shapes(encode, len(PCM)).items()}
    reference = results["f(pcm=pcm)"]  # a keyword call: always the PyO3 route
    assert all(result == reference for result in results.values()), results
    if expected is not None:  # A-law: audioop agrees with G.191 on every input
        assert reference == expected


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_every_call_shape_decodes_alike(law: str) -> None:
    decode = getattr(g711, f"{law}_decode")
    expected = np.frombuffer(getattr(stdlib_audioop, f"{law}2lin")(CODES, 2), np.int16)
    for shape, run in decode_shapes(decode, len(CODES)).items():
        result = run()
        assert result.dtype == np.int16 and np.array_equal(result, expected), shape


@pytest.mark.parametrize("name", ["lin2ulaw", "ulaw2lin", "lin2alaw", "alaw2lin"])
def test_every_audioop_call_shape_agrees(name: str) -> None:
    ours, theirs = getattr(audioop, name), getattr(stdlib_audioop, name)
    fragment = PCM.tobytes() if name.startswith("lin") else CODES
    expected = theirs(fragment, 2)
    calls = [
        lambda: ours(fragment, 2),
        lambda: ours(fragment, width=2),
        lambda: ours(fragment=fragment, width=2),
        lambda: ours(width=2, fragment=fragment),
        lambda: ours(fragment, True) == theirs(fragment, 1) and expected,  # bool is an int
        lambda: ours(fragment, np.int64(2)),  # any __index__ object
    ]
    for call in calls:
        assert call() == expected


FUNCTIONS = {
    "ulaw_encode": ("pcm", "out"),
    "ulaw_decode": ("data", "out"),
    "alaw_encode": ("pcm", "out"),
    "alaw_decode": ("data", "out"),
    "audioop_lin2ulaw": ("fragment", "width"),
    "audioop_ulaw2lin": ("fragment", "width"),
    "audioop_lin2alaw": ("fragment", "width"),
    "audioop_alaw2lin": ("fragment", "width"),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_argument_errors_are_worded_as_pyo3_words_them(name: str) -> None:
    function = getattr(_core, name)
    first, second = FUNCTIONS[name]
    value = b"\0\0"
    cases: list[tuple[Callable[[], object], type, str]] = [
        (
            lambda: function(),
            TypeError,
            f"missing 1 required positional argument: '{first}'"
            if second == "out"
            else f"missing 2 required positional arguments: '{first}' and '{second}'",
        ),
        (
            lambda: function(value, value, value),
            TypeError,
            "takes from 1 to 2 positional arguments but 3 were given"
            if second == "out"
            else "takes 2 positional arguments but 3 were given",
        ),
        (lambda: function(value, colour=1), TypeError, "got an unexpected keyword argument 'colour'"),
        (lambda: function(value, **{first: value}), TypeError, f"got multiple values for argument '{first}'"),
    ]
    if second == "width":
        cases += [
            (lambda: function(value), TypeError, "missing 1 required positional argument: 'width'"),
            (lambda: function(value, None), TypeError, "'NoneType' object cannot be interpreted as an integer"),
            (lambda: function(value, 2.0), TypeError, "'float' object cannot be interpreted as an integer"),
            (lambda: function(value, 2**70), OverflowError, "too large to convert"),
        ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_builtins_introspect_and_pickle(name: str) -> None:
    function = getattr(_core, name)
    first, second = FUNCTIONS[name]
    default = "=None" if second == "out" else ""
    assert str(inspect.signature(function)) == f"({first}, {second}{default})"
    assert function.__name__ == name and function.__module__ == "rtpcore._core"
    assert function.__self__ is _core
    assert function.__doc__ and function.__doc__.strip()
    assert pickle.loads(pickle.dumps(function)) is function


def test_decoded_arrays_are_plain_owned_arrays() -> None:
    # The data comes from numpy's default allocator called directly (see
    # numpy_memory in rust/src/pcm.rs): the array must be what np.empty makes.
    from numpy._core.multiarray import get_handler_name

    samples = g711.ulaw_decode(CODES)
    assert type(samples) is np.ndarray and samples.dtype == np.dtype(np.int16)
    assert samples.base is None and samples.flags.owndata and samples.flags.writeable
    assert samples.flags.c_contiguous and samples.flags.aligned
    assert get_handler_name(samples) == get_handler_name(np.empty(3)) == "default_allocator"
    expected = samples.copy()
    assert np.array_equal(pickle.loads(pickle.dumps(samples)), expected)
    samples.resize(len(CODES) + 3, refcheck=False)  # owned memory can grow
    assert np.array_equal(samples[: len(CODES)], expected) and not samples[len(CODES):].any()
    assert g711.alaw_decode(b"").shape == (0,)


def test_decoded_arrays_are_traced_as_numpy_traces_its_own() -> None:
    import tracemalloc

    from numpy._core._multiarray_umath import tracemalloc_domain

    numpy_domain = tracemalloc.DomainFilter(inclusive=True, domain=tracemalloc_domain)

    def traced(make: Callable[[], np.ndarray]) -> int:
        tracemalloc.start()
        try:
            keep = make()
            snapshot = tracemalloc.take_snapshot().filter_traces([numpy_domain])
            del keep
            after = tracemalloc.take_snapshot().filter_traces([numpy_domain])
        finally:
            tracemalloc.stop()
        total = sum(stat.size for stat in snapshot.statistics("filename"))
        assert sum(stat.size for stat in after.statistics("filename")) == 0  # freed and untracked
        return total

    codes = bytes(range(256)) * 4
    assert traced(lambda: g711.alaw_decode(codes)) == traced(lambda: np.empty(len(codes), np.int16)) == 2 * len(codes)


def test_numpy_byte_arrays_as_out() -> None:
    for dtype in (np.uint8, np.int8):
        out = np.zeros(len(PCM), dtype)
        assert g711.ulaw_encode(PCM, out=out) is out
        assert out.view(np.uint8).tobytes() == g711.ulaw_encode(PCM)
    with pytest.raises(ValueError, match="out: array must be C-contiguous"):
        g711.ulaw_encode(PCM, out=np.zeros(2 * len(PCM), np.uint8)[::2])
    readonly = np.zeros(len(PCM), np.uint8)
    readonly.flags.writeable = False
    with pytest.raises(ValueError, match="out: array is read-only"):
        g711.ulaw_encode(PCM, out=readonly)
    with pytest.raises(TypeError, match=r"out: expected a writable buffer of bytes \(uint8\)"):
        g711.ulaw_encode(PCM, out=np.zeros(len(PCM), np.int16))
    with pytest.raises(ValueError, match="out: buffer holds 3 items, 10 needed"):
        g711.ulaw_encode(PCM, out=np.zeros(3, np.uint8))


def test_no_call_leaks_a_reference() -> None:
    codes, pcm = bytes(CODES), PCM.copy()
    samples_out, codes_out = np.empty(len(codes), np.int16), bytearray(len(pcm))
    calls: list[Callable[[], object]] = [
        lambda: g711.ulaw_decode(codes),
        lambda: g711.ulaw_decode(codes, out=samples_out),
        lambda: g711.ulaw_decode(data=codes, out=samples_out),
        lambda: g711.alaw_encode(pcm),
        lambda: g711.alaw_encode(pcm, codes_out),
        lambda: audioop.ulaw2lin(codes, 2),
        lambda: audioop.ulaw2lin(codes, width=2),
    ]
    failing: list[Callable[[], object]] = [
        lambda: g711.ulaw_decode(codes, out=samples_out[:2]),
        lambda: g711.alaw_encode(pcm, out=codes_out, extra=1),
        lambda: audioop.ulaw2lin(codes, 7),
    ]
    watched = [codes, pcm, samples_out, codes_out]
    for call in calls + failing:  # warm up caches (interned names, dtype)
        try:
            call()
        except (TypeError, ValueError, audioop.error):
            pass
    before = [sys.getrefcount(obj) for obj in watched]
    for _ in range(200):
        for call in calls:
            call()
        for call in failing:
            with pytest.raises((TypeError, ValueError, audioop.error)):
                call()
    assert [sys.getrefcount(obj) for obj in watched] == before
