"""The SIP stack: message codec, SDP, transactions, dialogs, user agents.

The message codec (``URI``, ``Address``, ``Via``, ``Headers``, ``Request``,
``Response``, ``parse_message``, ``StreamParser`` ...) comes from the
Cython-compiled build when one is available, from the pure-Python build
otherwise; both are the same source, ``rtpcore/sip/_codec.py``.
``rtpcore.sip.codec.COMPILED`` says which one is in use.
"""

from __future__ import annotations

from rtpcore.sip.codec import COMPILED
from rtpcore.sip.codec import implementation as _impl

URI = _impl.URI
Address = _impl.Address
Via = _impl.Via
CSeq = _impl.CSeq
Headers = _impl.Headers
Message = _impl.Message
Request = _impl.Request
Response = _impl.Response
BodyPart = _impl.BodyPart
Limits = _impl.Limits
KeepAlive = _impl.KeepAlive
KEEPALIVE = _impl.KEEPALIVE
StreamParser = _impl.StreamParser
parse_message = _impl.parse_message
parse_uri = _impl.parse_uri
parse_address = _impl.parse_address
parse_via = _impl.parse_via
parse_media_type = _impl.parse_media_type
parse_multipart = _impl.parse_multipart
encode_multipart = _impl.encode_multipart
session_description = _impl.session_description
canonical_name = _impl.canonical_name
split_header_list = _impl.split_header_list
REASON_PHRASES = _impl.REASON_PHRASES

__all__ = ["COMPILED", *_impl.__all__]
