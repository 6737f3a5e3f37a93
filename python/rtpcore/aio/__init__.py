"""The event-loop side of rtpcore: the only place with sockets and asyncio.

The protocol cores (SIP user agent, transactions, media sessions) are
sans-IO; the modules here bind them to the network. ``rtpcore.aio.sip``:
SIP over UDP, TCP and TLS.
"""
