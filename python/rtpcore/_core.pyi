# Type stubs for the compiled core, checked against the built module by
# mypy's stubtest in CI. Each area keeps its own section below and extends
# __all__ with `__all__ += [...]` there.

__all__ = ["__version__"]

__version__: str

# --- srtp ---
__all__ += ["SRTPSession", "srtp_derive_session_key", "srtp_aes_cm_keystream"]

from collections.abc import Iterable
from typing import final

from typing_extensions import Buffer

from rtpcore.errors import RtpcoreError

@final
class SRTPSession:
    def __new__(
        cls,
        profile: str,
        master_key: Buffer,
        master_salt: Buffer,
        *,
        replay_window: int = 128,
        key_derivation_rate: int = 0,
        srtcp_first_index: int = 0,
        mki: Buffer | None = None,
        allow_repeat_tx: bool = False,
    ) -> SRTPSession: ...
    @property
    def profile(self) -> str: ...
    @property
    def replay_window(self) -> int: ...
    @property
    def key_derivation_rate(self) -> int: ...
    @property
    def srtcp_first_index(self) -> int: ...
    @property
    def mki(self) -> bytes | None: ...
    @property
    def allow_repeat_tx(self) -> bool: ...
    @property
    def rtp_overhead(self) -> int: ...
    @property
    def rtcp_overhead(self) -> int: ...
    def protect(self, rtp: Buffer) -> bytes: ...
    def unprotect(self, srtp: Buffer) -> bytes: ...
    def protect_rtcp(self, rtcp: Buffer) -> bytes: ...
    def unprotect_rtcp(self, srtcp: Buffer) -> bytes: ...
    def protect_batch(self, packets: Iterable[Buffer]) -> list[bytes | RtpcoreError]: ...
    def unprotect_batch(self, packets: Iterable[Buffer]) -> list[bytes | RtpcoreError]: ...
    def protect_rtcp_batch(self, packets: Iterable[Buffer]) -> list[bytes | RtpcoreError]: ...
    def unprotect_rtcp_batch(self, packets: Iterable[Buffer]) -> list[bytes | RtpcoreError]: ...
    def roc(self, ssrc: int) -> int: ...
    def set_roc(self, ssrc: int, roc: int) -> None: ...

def srtp_derive_session_key(
    master_key: Buffer,
    master_salt: Buffer,
    label: int,
    length: int,
    *,
    index: int = 0,
    key_derivation_rate: int = 0,
) -> bytes: ...
def srtp_aes_cm_keystream(
    session_key: Buffer, session_salt: Buffer, length: int, *, ssrc: int = 0, index: int = 0
) -> bytes: ...
