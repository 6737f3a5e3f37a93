"""The gateway: SIP trunks in and out, an AI agent on every call.

::

    from rtpcore.gateway import Gateway, load_config

    async def agent(call):                 # or agent="ws://..." (Twilio Media Streams,
        call.play(greeting)                #   raw PCM), or None: the embedded default agent
        async for frame in call.audio:
            ...

    gw = Gateway(load_config("gateway.toml"), agent=agent)
    await gw.start()

Modules: ``config`` (TOML + environment), ``server`` (``Gateway``),
``bridge`` (``GatewayCall``, ``CallReport``), ``agent`` (the ``Call`` API),
``twilio`` and ``rawpcm`` (the WebSocket protocols), ``default_agent``.
The names below are imported on first use, so that reading a config does
not start loading the media engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rtpcore.errors import CallFailed, ConfigError
from rtpcore.gateway.config import GatewayConfig
from rtpcore.gateway.config import load as load_config

if TYPE_CHECKING:
    from rtpcore.gateway.agent import DTMF, Agent, Call, MarkPlayed, TransferResult
    from rtpcore.gateway.bridge import CallReport, GatewayCall
    from rtpcore.gateway.default_agent import default_agent
    from rtpcore.gateway.rawpcm import raw_pcm_agent
    from rtpcore.gateway.server import Gateway
    from rtpcore.gateway.twilio import twilio_agent

__all__ = [
    "Agent",
    "Call",
    "CallFailed",
    "CallReport",
    "ConfigError",
    "DTMF",
    "Gateway",
    "GatewayCall",
    "GatewayConfig",
    "MarkPlayed",
    "TransferResult",
    "default_agent",
    "load_config",
    "raw_pcm_agent",
    "twilio_agent",
]

_LAZY = {
    "Agent": "agent", "Call": "agent", "DTMF": "agent", "MarkPlayed": "agent",
    "TransferResult": "agent", "CallReport": "bridge", "GatewayCall": "bridge",
    "Gateway": "server", "default_agent": "default_agent", "raw_pcm_agent": "rawpcm",
    "twilio_agent": "twilio",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'rtpcore.gateway' has no attribute {name!r}")
    return getattr(importlib.import_module(f"rtpcore.gateway.{module}"), name)
