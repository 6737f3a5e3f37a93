# Type stubs for the compiled core, checked against the built module by
# mypy's stubtest in CI. Each area keeps its own section below and extends
# __all__ with `__all__ += [...]` there.

__all__ = ["__version__"]

__version__: str

# --- codecs (g711, audioop) ---
from typing import Self, TypeVar, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Buffer

_Out = TypeVar("_Out", bound=Buffer)

__all__ += [
    "ulaw_encode",
    "ulaw_decode",
    "alaw_encode",
    "alaw_decode",
    "audioop_lin2ulaw",
    "audioop_ulaw2lin",
    "audioop_lin2alaw",
    "audioop_alaw2lin",
]

@overload
def ulaw_encode(pcm: Buffer, out: None = None) -> bytes: ...
@overload
def ulaw_encode(pcm: Buffer, out: _Out) -> _Out: ...
@overload
def ulaw_decode(data: Buffer, out: None = None) -> npt.NDArray[np.int16]: ...
@overload
def ulaw_decode(data: Buffer, out: _Out) -> _Out: ...
@overload
def alaw_encode(pcm: Buffer, out: None = None) -> bytes: ...
@overload
def alaw_encode(pcm: Buffer, out: _Out) -> _Out: ...
@overload
def alaw_decode(data: Buffer, out: None = None) -> npt.NDArray[np.int16]: ...
@overload
def alaw_decode(data: Buffer, out: _Out) -> _Out: ...
def audioop_lin2ulaw(fragment: Buffer, width: int) -> bytes: ...
def audioop_ulaw2lin(fragment: Buffer, width: int) -> bytes: ...
def audioop_lin2alaw(fragment: Buffer, width: int) -> bytes: ...
def audioop_alaw2lin(fragment: Buffer, width: int) -> bytes: ...

# --- codecs (g722) ---
__all__ += ["G722Encoder", "G722Decoder"]

@final
class G722Encoder:
    def __new__(cls) -> Self: ...
    @overload
    def encode(self, pcm: Buffer, out: None = None) -> bytes: ...
    @overload
    def encode(self, pcm: Buffer, out: _Out) -> _Out: ...
    def reset(self) -> None: ...

@final
class G722Decoder:
    def __new__(cls, bitrate: int = 64000) -> Self: ...
    @property
    def bitrate(self) -> int: ...
    @overload
    def decode(self, data: Buffer, out: None = None) -> npt.NDArray[np.int16]: ...
    @overload
    def decode(self, data: Buffer, out: _Out) -> _Out: ...
    def reset(self) -> None: ...
