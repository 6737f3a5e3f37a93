"""rtpcore: the media layer between SIP trunks and AI voice agents.

The per-packet work (RTP/RTCP, SRTP, codecs, jitter buffer) runs in the
compiled core ``rtpcore._core``; the public modules here re-export it with
documentation, and the SIP stack and the gateway are pure Python on top.
"""

from rtpcore._core import __version__
from rtpcore.errors import ParseError, RtpcoreError

__all__ = ["__version__", "ParseError", "RtpcoreError"]
