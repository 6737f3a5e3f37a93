"""RTP payload formats telephony needs besides the codecs.

:class:`TelephoneEvent` is an RFC 4733 named event (DTMF ``0-9 * # A-D`` are
events 0..15); a sender repeats one with growing ``duration`` and sets
``end`` on the last packets of the event:

>>> TelephoneEvent("5", end=True, volume=10, duration=800)
TelephoneEvent(5, end=True, volume=10, duration=800)
>>> bytes(TelephoneEvent("#", duration=160)).hex()
'0b0a00a0'
>>> TelephoneEvent.parse(bytes.fromhex("058a0320")).digit
'5'

:class:`ComfortNoise` is an RFC 3389 payload: the noise ``level`` in -dBov
(0..127) and the quantized reflection ``coefficients`` of its spectrum, as
plain ints (the codec layer turns them into noise):

>>> ComfortNoise.parse(b"\\x28\\x81\\x7f")
ComfortNoise(40, coefficients=(129, 127))

Both parse any buffer and raise :class:`rtpcore.errors.ParseError`
(layer ``"payload"``) on bad input; ``bytes(x)`` serializes.
"""

from rtpcore._core import ComfortNoise, TelephoneEvent

__all__ = ["ComfortNoise", "TelephoneEvent"]
