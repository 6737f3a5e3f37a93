"""The gateway's configuration: a TOML file plus ``RTPCORE_*`` environment overrides.

::

    [sip]
    host = "0.0.0.0"          # where SIP listens
    udp_port = 5060           # 0: any free port; omit (or "off") to not listen
    tcp_port = 5060
    tls_port = 5061           # needs tls_cert and tls_key
    tls_cert = "cert.pem"
    tls_key = "key.pem"
    allow = ["203.0.113.0/24"]  # who may call; everyone when unset

    [[trunks]]
    name = "carrier"
    registrar = "sip:sip.carrier.example"   # optional: register there
    proxy = "198.51.100.7:5060"             # where calls out go (default: the registrar)
    username = "acct"
    password = "secret"                     # or RTPCORE_TRUNKS_CARRIER_PASSWORD
    allow = ["198.51.100.0/24"]             # the trunk's signalling addresses
    cps = 10                                # new calls out per second, 0: no limit
    caller_id = "+15550100"

    [media]
    host = "127.0.0.1"        # RTP sockets and the address put in SDP
    port_min = 20000
    port_max = 40000
    codecs = ["G722", "PCMU", "PCMA"]
    srtp = "optional"         # off | optional | required
    sample_rate = 16000       # PCM rate for in-process agents
    ptime = 20

    [agent]
    url = "default"           # "default", ws://... or wss://...
    protocol = "twilio"       # twilio | raw-pcm (for ws:// URLs)
    sample_rate = 16000       # raw-pcm only: 8000, 16000 or 24000

    [http]
    listen = "127.0.0.1:8080" # REST subset and /metrics; omit to disable
    [recording]
    dir = "recordings"        # one stereo WAV per call; omit to disable
    [logging]
    level = "info"
    format = "json"           # json | text

Every key can be overridden by ``RTPCORE_<SECTION>_<KEY>`` (``RTPCORE_SIP_UDP_PORT=5070``,
``RTPCORE_AGENT_URL=ws://...``) and a trunk's by ``RTPCORE_TRUNKS_<NAME>_<KEY>``
(``RTPCORE_TRUNKS_CARRIER_PASSWORD``): secrets need not live in the file.
Lists in the environment are comma-separated. Every bad value raises
``ConfigError`` naming the key, at load time, before anything listens.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
import types
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from rtpcore.errors import ConfigError
from rtpcore.sip import parse_uri

__all__ = [
    "AgentSettings",
    "GatewayConfig",
    "HTTPSettings",
    "LoggingSettings",
    "MediaSettings",
    "RecordingSettings",
    "SIPSettings",
    "TrunkSettings",
    "load",
]

_CODECS = ("PCMU", "PCMA", "G722")
_SID_RE = re.compile(r"^AC[0-9a-f]{32}$")


@dataclass(frozen=True)
class SIPSettings:
    """Where SIP listens and who may call."""

    host: str = "127.0.0.1"
    udp_port: int | None = 5060
    tcp_port: int | None = None
    tls_port: int | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    allow: tuple[str, ...] | None = None
    user: str = "rtpcore"
    # Requests per second per source address (None: no limit). Off by default:
    # a trunk sends every call from the same few addresses.
    rate: float | None = None

    def check(self, key: str) -> None:
        _check_host(self.host, f"{key}.host")
        for name in ("udp_port", "tcp_port", "tls_port"):
            _check_port(getattr(self, name), f"{key}.{name}")
        if self.udp_port is None and self.tcp_port is None and self.tls_port is None:
            raise ConfigError(f"{key}.udp_port", "no SIP listener: set udp_port, tcp_port or "
                              "tls_port")
        if self.tls_port is not None:
            for name in ("tls_cert", "tls_key"):
                value = getattr(self, name)
                if value is None:
                    raise ConfigError(f"{key}.{name}", "tls_port is set, so this is needed")
                if not Path(value).is_file():
                    raise ConfigError(f"{key}.{name}", f"no such file {value!r}")
        _check_networks(self.allow, f"{key}.allow")
        if self.rate is not None and self.rate <= 0:
            raise ConfigError(f"{key}.rate", f"must be positive, got {self.rate}")


@dataclass(frozen=True)
class TrunkSettings:
    """A SIP trunk (carrier or PBX): registration, calls out, trusted sources."""

    name: str
    registrar: str | None = None
    proxy: str | None = None  # host:port where requests go (default: the registrar's host)
    transport: str = "UDP"
    username: str | None = None
    password: str | None = None
    realm: str | None = None
    expires: int = 3600
    allow: tuple[str, ...] = ()
    cps: float = 0.0
    caller_id: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "transport", self.transport.upper())  # names, any case

    def check(self, key: str) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_-]+", self.name):
            raise ConfigError(f"{key}.name", f"letters, digits, - and _ only, got {self.name!r}")
        if self.registrar is not None:
            try:
                parse_uri(self.registrar)
            except ValueError as exc:
                raise ConfigError(f"{key}.registrar", f"not a SIP URI: {exc}") from None
            if self.username is None or self.password is None:
                raise ConfigError(f"{key}.username" if self.username is None
                                  else f"{key}.password", "registration needs it")
        if self.proxy is not None:
            _split_hostport(self.proxy, f"{key}.proxy", 5060)
        if self.transport not in ("UDP", "TCP", "TLS"):
            raise ConfigError(f"{key}.transport", f"UDP, TCP or TLS, got {self.transport!r}")
        if not 60 <= self.expires <= 86400:
            raise ConfigError(f"{key}.expires", f"60..86400 s, got {self.expires}")
        _check_networks(self.allow, f"{key}.allow")
        if self.cps < 0:
            raise ConfigError(f"{key}.cps", f"must be >= 0, got {self.cps}")

    @property
    def destination(self) -> tuple[str, str, int] | None:
        """(transport, host, port) where requests through this trunk go."""
        if self.proxy is not None:
            host, port = _split_hostport(self.proxy, "proxy", 5060)
        elif self.registrar is not None:
            uri = parse_uri(self.registrar)
            host, port = uri.host.strip("[]"), uri.port or 5060
        else:
            return None
        return (self.transport, host, port)


@dataclass(frozen=True)
class MediaSettings:
    """RTP ports, codecs, SRTP and the PCM rate agents get."""

    host: str = "127.0.0.1"
    port_min: int = 20000
    port_max: int = 40000
    codecs: tuple[str, ...] = ("G722", "PCMU", "PCMA")
    srtp: str = "optional"
    sample_rate: int = 16000
    ptime: int = 20
    workers: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "codecs", tuple(c.upper() for c in self.codecs))

    def check(self, key: str) -> None:
        _check_host(self.host, f"{key}.host")
        for name in ("port_min", "port_max"):
            value = getattr(self, name)
            if not 1024 <= value <= 65534:
                raise ConfigError(f"{key}.{name}", f"1024..65534, got {value}")
        if self.port_max - self.port_min < 2:
            raise ConfigError(f"{key}.port_max", f"must exceed port_min ({self.port_min}) by 2 "
                              "or more (RTP and RTCP)")
        if not self.codecs:
            raise ConfigError(f"{key}.codecs", "at least one codec")
        for codec in self.codecs:
            if codec not in _CODECS:
                raise ConfigError(f"{key}.codecs", f"unsupported codec {codec!r} "
                                  f"(supported: {', '.join(_CODECS)})")
        if self.srtp not in ("off", "optional", "required"):
            raise ConfigError(f"{key}.srtp", f"off, optional or required, got {self.srtp!r}")
        if self.sample_rate not in (8000, 16000, 24000, 48000):
            raise ConfigError(f"{key}.sample_rate", f"8000, 16000, 24000 or 48000, got "
                              f"{self.sample_rate}")
        if self.ptime not in (10, 20, 30, 40, 60):
            raise ConfigError(f"{key}.ptime", f"10, 20, 30, 40 or 60 ms, got {self.ptime}")
        if self.workers is not None and not 1 <= self.workers <= 64:
            raise ConfigError(f"{key}.workers", f"1..64, got {self.workers}")


@dataclass(frozen=True)
class AgentSettings:
    """Who answers calls: the embedded agent or a WebSocket server."""

    url: str = "default"
    protocol: str = "twilio"
    sample_rate: int = 16000  # raw-pcm only
    connect_timeout: float = 5.0
    queue_ms: int = 60000  # agent audio buffered ahead of playback before it is dropped

    def check(self, key: str) -> None:
        if self.url != "default" and not re.match(r"^wss?://[^/\s]+", self.url):
            raise ConfigError(f"{key}.url", f"'default' or a ws:// / wss:// URL, got {self.url!r}")
        if self.protocol not in ("twilio", "raw-pcm"):
            raise ConfigError(f"{key}.protocol", f"twilio or raw-pcm, got {self.protocol!r}")
        if self.sample_rate not in (8000, 16000, 24000):
            raise ConfigError(f"{key}.sample_rate", f"8000, 16000 or 24000, got "
                              f"{self.sample_rate}")
        if not 0 < self.connect_timeout <= 60:
            raise ConfigError(f"{key}.connect_timeout", f"0..60 s, got {self.connect_timeout}")
        if not 1000 <= self.queue_ms <= 600000:
            raise ConfigError(f"{key}.queue_ms", f"1000..600000, got {self.queue_ms}")


@dataclass(frozen=True)
class HTTPSettings:
    """The HTTP side (REST subset, metrics); off unless ``listen`` is set."""

    listen: str | None = None
    auth_token: str | None = None  # HTTP Basic password for the REST subset

    def check(self, key: str) -> None:
        if self.listen is not None:
            _split_hostport(self.listen, f"{key}.listen", None)


@dataclass(frozen=True)
class RecordingSettings:
    """Per-call stereo WAV recordings (left: caller, right: agent)."""

    dir: str | None = None

    def check(self, key: str) -> None:
        if self.dir is not None and Path(self.dir).exists() and not Path(self.dir).is_dir():
            raise ConfigError(f"{key}.dir", f"{self.dir!r} exists and is not a directory")


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "info"
    format: str = "text"

    def check(self, key: str) -> None:
        if self.level.lower() not in ("debug", "info", "warning", "error"):
            raise ConfigError(f"{key}.level", f"debug, info, warning or error, got {self.level!r}")
        if self.format not in ("json", "text"):
            raise ConfigError(f"{key}.format", f"json or text, got {self.format!r}")


@dataclass(frozen=True)
class GatewayConfig:
    """Everything the gateway needs; ``load()`` builds one from TOML and the
    environment, or construct it directly in Python."""

    sip: SIPSettings = field(default_factory=SIPSettings)
    trunks: tuple[TrunkSettings, ...] = ()
    media: MediaSettings = field(default_factory=MediaSettings)
    agent: AgentSettings = field(default_factory=AgentSettings)
    http: HTTPSettings = field(default_factory=HTTPSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    account_sid: str = "AC" + "0" * 32
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """Raise ``ConfigError`` for the first bad value."""
        for name in ("sip", "media", "agent", "http", "recording", "logging"):
            getattr(self, name).check(name)
        seen: set[str] = set()
        for trunk in self.trunks:
            key = f"trunks.{trunk.name}"
            trunk.check(key)
            if trunk.name in seen:
                raise ConfigError(f"{key}.name", "two trunks have this name")
            if trunk.transport == "TLS" and trunk.username is not None \
                    and self.sip.tls_cert is None:
                # The trunk's own endpoint listens for its calls over TLS too.
                raise ConfigError(f"{key}.transport", "TLS needs sip.tls_cert and sip.tls_key")
            seen.add(trunk.name)
        if not _SID_RE.match(self.account_sid):
            raise ConfigError("account_sid", f"'AC' and 32 lower-case hex digits, got "
                              f"{self.account_sid!r}")
        if not 0 <= self.drain_timeout <= 3600:
            raise ConfigError("drain_timeout", f"0..3600 s, got {self.drain_timeout}")

    def trunk(self, name: str) -> TrunkSettings:
        for trunk in self.trunks:
            if trunk.name == name:
                return trunk
        raise KeyError(name)


_SECTIONS = {f.name: f for f in dataclasses.fields(GatewayConfig)}
_SCALARS = ("account_sid", "drain_timeout")


def load(path: str | os.PathLike[str] | None = None,
         environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """The configuration in the TOML file at ``path`` (defaults everywhere
    without one), with ``RTPCORE_*`` overrides from ``environ`` (default:
    ``os.environ``)."""
    environ = os.environ if environ is None else environ
    source = str(path) if path is not None else "defaults"
    data: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except OSError as exc:
            raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("config", f"not valid TOML: {exc}", source) from None
    sources: dict[str, str] = {}
    _apply_environment(data, environ, sources)

    def where(key: str) -> str:
        return sources.get(key, source)

    for name in data:
        if name not in _SECTIONS:
            raise ConfigError(name, f"unknown setting (known: {', '.join(_SECTIONS)})",
                              where(name))
    kwargs: dict[str, Any] = {}
    hints = get_type_hints(GatewayConfig)
    for name in _SCALARS:
        if name in data:
            kwargs[name] = _coerce(data[name], hints[name], name, where(name))
    section_types = {"sip": SIPSettings, "media": MediaSettings, "agent": AgentSettings,
                     "http": HTTPSettings, "recording": RecordingSettings,
                     "logging": LoggingSettings}
    for name, cls in section_types.items():
        if name in data:
            kwargs[name] = _build(cls, data[name], name, where)
    if "trunks" in data:
        trunks = data["trunks"]
        if not isinstance(trunks, list):
            raise ConfigError("trunks", "an array of tables ([[trunks]])", where("trunks"))
        built = []
        for i, table in enumerate(trunks):
            trunk_name = table.get("name") if isinstance(table, dict) else None
            built.append(_build(TrunkSettings, table, f"trunks.{trunk_name or i}", where))
        kwargs["trunks"] = tuple(built)
    try:
        return GatewayConfig(**kwargs)
    except ConfigError as exc:
        if exc.source is None:
            raise ConfigError(exc.key, exc.message, where(exc.key)) from None
        raise


def _apply_environment(data: dict[str, Any], environ: Mapping[str, str],
                       sources: dict[str, str]) -> None:
    """Fold ``RTPCORE_<SECTION>_<KEY>`` variables into the TOML data."""
    for variable in sorted(environ):
        if not variable.startswith("RTPCORE_"):
            continue
        rest = variable[len("RTPCORE_"):].lower()
        if rest in _SCALARS:
            data[rest] = environ[variable]
            sources[rest] = variable
            continue
        if rest.startswith("trunks_"):
            tail = rest[len("trunks_"):]
            trunks = data.setdefault("trunks", [])
            for table in trunks if isinstance(trunks, list) else ():
                if not isinstance(table, dict):
                    continue
                prefix = str(table.get("name", "")).lower().replace("-", "_") + "_"
                if tail.startswith(prefix):
                    key = tail[len(prefix):]
                    table[key] = environ[variable]
                    sources[f"trunks.{table.get('name')}.{key}"] = variable
                    break
            else:
                raise ConfigError(f"trunks.{tail}", "no trunk of that name in the file",
                                  variable)
            continue
        for section in _SECTIONS:
            if section not in _SCALARS and section != "trunks" and rest.startswith(section + "_"):
                key = rest[len(section) + 1:]
                table = data.setdefault(section, {})
                if isinstance(table, dict):
                    table[key] = environ[variable]
                    sources[f"{section}.{key}"] = variable
                break
        # Other RTPCORE_* variables (RTPCORE_NO_EXTENSIONS ...) are not ours.


def _build(cls: type[Any], table: Any, key: str, where: Any) -> Any:
    if not isinstance(table, dict):
        raise ConfigError(key, "a table", where(key))
    hints = get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in table.items():
        if name not in known:
            raise ConfigError(f"{key}.{name}", f"unknown setting (known: {', '.join(sorted(known))})",
                              where(f"{key}.{name}"))
        kwargs[name] = _coerce(value, hints[name], f"{key}.{name}", where(f"{key}.{name}"))
    missing = [f.name for f in dataclasses.fields(cls)
               if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ConfigError(f"{key}.{missing[0]}", "required", where(key))
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, key: str, source: str) -> Any:
    """``value`` (from TOML, or a string from the environment) as ``hint``.

    Strings are converted (to numbers, booleans, comma-separated lists) only
    when they come from the environment, where everything is a string; a
    TOML file has types of its own. ``"off"`` means "not set" in both, as
    TOML has no null.
    """
    from_env = source.startswith("RTPCORE_")
    if isinstance(value, str) and not from_env and hint is not str \
            and get_origin(hint) not in (Union, types.UnionType):
        raise ConfigError(key, f"{_expected(hint)}, got the string {value!r}", source)
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        if isinstance(value, str) and value.strip().lower() in ("", "off", "none"):
            return None
        if isinstance(value, str) and not from_env and options[0] is not str:
            raise ConfigError(key, f"{_expected(options[0])} or \"off\", got {value!r}",
                              source)
        return _coerce(value, options[0], key, source)
    if origin is tuple:
        item = get_args(hint)[0]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ConfigError(key, f"a list, got {value!r}", source)
        return tuple(_coerce(v, item, key, source) for v in value)
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false",
                                                        "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        raise ConfigError(key, f"true or false, got {value!r}", source)
    if hint is int:
        if isinstance(value, bool):
            raise ConfigError(key, f"an integer, got {value!r}", source)
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip()):
            return int(value)
        raise ConfigError(key, f"an integer, got {value!r}", source)
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(key, f"a number, got {value!r}", source)
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(key, f"a string, got {value!r}", source)
    raise AssertionError(f"config field {key} has an unhandled type {hint!r}")


def _expected(hint: Any) -> str:
    if get_origin(hint) is tuple:
        return "a list"
    return {int: "an integer", float: "a number", bool: "true or false"}.get(hint, "a value")


def _check_port(port: int | None, key: str) -> None:
    if port is not None and not 0 <= port <= 65535:
        raise ConfigError(key, f"0..65535, got {port}")


def _check_host(host: str, key: str) -> None:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ConfigError(key, f"an IP address, got {host!r}") from None


def _check_networks(networks: tuple[str, ...] | None, key: str) -> None:
    for network in networks or ():
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigError(key, f"not an address or network: {network!r}") from None


def _split_hostport(text: str, key: str, default_port: int | None) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, ""
    host = host.strip("[]")
    if not host:
        raise ConfigError(key, f"host:port, got {text!r}")
    if not port:
        if default_port is None:
            raise ConfigError(key, f"host:port, got {text!r}")
        return host, default_port
    if not port.isdigit() or not 0 < int(port) <= 65535:
        raise ConfigError(key, f"a port 1..65535 after the colon, got {text!r}")
    return host, int(port)
