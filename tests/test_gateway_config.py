"""Gateway configuration: TOML, environment overrides, and a ConfigError naming
the key for every bad value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from rtpcore.errors import ConfigError
from rtpcore.gateway.config import GatewayConfig, load

FULL = """
account_sid = "AC0123456789abcdef0123456789abcdef"
drain_timeout = 12.5

[sip]
host = "127.0.0.1"
udp_port = 5070
tcp_port = 5071
allow = ["10.0.0.0/8", "192.0.2.7"]

[[trunks]]
name = "carrier"
registrar = "sip:sip.carrier.example"
proxy = "192.0.2.10:5080"
username = "acct"
password = "from-file"
allow = ["192.0.2.0/24"]
cps = 5
caller_id = "+15550100"

[[trunks]]
name = "pbx-2"
proxy = "192.0.2.20"

[media]
port_min = 30000
port_max = 30100
codecs = ["pcmu", "G722"]
srtp = "required"
sample_rate = 24000

[agent]
url = "ws://127.0.0.1:8765/stream"
protocol = "raw-pcm"
sample_rate = 8000

[http]
listen = "127.0.0.1:8080"

[recording]
dir = "recordings"

[logging]
level = "debug"
format = "json"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "gateway.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_defaults_are_valid() -> None:
    config = load(environ={})
    assert config == GatewayConfig()
    assert config.agent.url == "default"
    assert config.sip.udp_port == 5060


def test_full_file(tmp_path: Path) -> None:
    config = load(write(tmp_path, FULL), environ={})
    assert config.account_sid == "AC0123456789abcdef0123456789abcdef"
    assert config.drain_timeout == 12.5
    assert (config.sip.udp_port, config.sip.tcp_port, config.sip.tls_port) == (5070, 5071, None)
    assert config.sip.allow == ("10.0.0.0/8", "192.0.2.7")
    carrier = config.trunk("carrier")
    assert carrier.destination == ("UDP", "192.0.2.10", 5080)
    assert (carrier.username, carrier.password, carrier.cps) == ("acct", "from-file", 5.0)
    assert config.trunk("pbx-2").destination == ("UDP", "192.0.2.20", 5060)
    assert config.media.codecs == ("PCMU", "G722")  # codec names are case-insensitive
    assert (config.media.srtp, config.media.sample_rate) == ("required", 24000)
    assert (config.agent.protocol, config.agent.sample_rate) == ("raw-pcm", 8000)
    assert config.http.listen == "127.0.0.1:8080"
    assert config.recording.dir == "recordings"
    assert (config.logging.level, config.logging.format) == ("debug", "json")


def test_environment_overrides(tmp_path: Path) -> None:
    environ = {
        "RTPCORE_SIP_UDP_PORT": "5090",
        "RTPCORE_SIP_TCP_PORT": "off",
        "RTPCORE_MEDIA_CODECS": "PCMA, PCMU",
        "RTPCORE_AGENT_URL": "wss://agent.example/ws",
        "RTPCORE_TRUNKS_CARRIER_PASSWORD": "from-env",
        "RTPCORE_TRUNKS_PBX_2_CPS": "2.5",
        "RTPCORE_DRAIN_TIMEOUT": "3",
        "RTPCORE_NO_EXTENSIONS": "1",  # not a gateway setting: ignored
    }
    config = load(write(tmp_path, FULL), environ=environ)
    assert (config.sip.udp_port, config.sip.tcp_port) == (5090, None)
    assert config.media.codecs == ("PCMA", "PCMU")
    assert config.agent.url == "wss://agent.example/ws"
    assert config.trunk("carrier").password == "from-env"
    assert config.trunk("pbx-2").cps == 2.5
    assert config.drain_timeout == 3.0


def test_environment_without_file() -> None:
    config = load(environ={"RTPCORE_AGENT_URL": "ws://127.0.0.1:9/x",
                           "RTPCORE_MEDIA_SRTP": "off"})
    assert config.agent.url == "ws://127.0.0.1:9/x"
    assert config.media.srtp == "off"


@pytest.mark.parametrize(("toml", "key"), [
    ("[sip]\nudp_port = 70000", "sip.udp_port"),
    ("[sip]\nudp_port = \"five\"", "sip.udp_port"),
    ("[sip]\nhost = \"sip.example\"", "sip.host"),
    ("[sip]\nudp_port = \"off\"", "sip.udp_port"),  # no listener at all
    ("[sip]\ntls_port = 5061", "sip.tls_cert"),
    ("[sip]\ntls_port = 5061\ntls_cert = \"/nonexistent.pem\"\ntls_key = \"/x\"", "sip.tls_cert"),
    ("[sip]\nallow = [\"10.0.0.300/8\"]", "sip.allow"),
    ("[sip]\nallow = \"10.0.0.0/8\"", "sip.allow"),
    ("[sip]\nport = 5060", "sip.port"),  # unknown key
    ("[sipp]\nudp_port = 5060", "sipp"),  # unknown section
    ("[media]\nsrtp = \"maybe\"", "media.srtp"),
    ("[media]\ncodecs = [\"OPUS\"]", "media.codecs"),
    ("[media]\ncodecs = []", "media.codecs"),
    ("[media]\nsample_rate = 44100", "media.sample_rate"),
    ("[media]\nport_min = 30000\nport_max = 30001", "media.port_max"),
    ("[media]\nport_min = 80", "media.port_min"),
    ("[media]\nptime = 25", "media.ptime"),
    ("[agent]\nurl = \"http://agent.example\"", "agent.url"),
    ("[agent]\nprotocol = \"grpc\"", "agent.protocol"),
    ("[agent]\nsample_rate = 48000", "agent.sample_rate"),
    ("[http]\nlisten = \"127.0.0.1\"", "http.listen"),
    ("[http]\nlisten = \"127.0.0.1:http\"", "http.listen"),
    ("[logging]\nlevel = \"loud\"", "logging.level"),
    ("[logging]\nformat = \"xml\"", "logging.format"),
    ("account_sid = \"AC123\"", "account_sid"),
    ("drain_timeout = -1", "drain_timeout"),
    ("[[trunks]]\nregistrar = \"sip:x.example\"", "trunks.0.name"),
    ("[[trunks]]\nname = \"c\"\nregistrar = \"sip:x.example\"", "trunks.c.username"),
    ("[[trunks]]\nname = \"c\"\nregistrar = \"sip:x.example\"\nusername = \"u\"",
     "trunks.c.password"),
    ("[[trunks]]\nname = \"c\"\nregistrar = \"not a uri\"", "trunks.c.registrar"),
    ("[[trunks]]\nname = \"c\"\ntransport = \"SCTP\"", "trunks.c.transport"),
    ("[[trunks]]\nname = \"c\"\ntransport = \"tls\"\nusername = \"u\"\npassword = \"p\"",
     "trunks.c.transport"),
    ("[[trunks]]\nname = \"c\"\nproxy = \"192.0.2.1:99999\"", "trunks.c.proxy"),
    ("[[trunks]]\nname = \"c\"\ncps = -1", "trunks.c.cps"),
    ("[[trunks]]\nname = \"bad name\"", "trunks.bad name.name"),
    ("[[trunks]]\nname = \"c\"\n[[trunks]]\nname = \"c\"", "trunks.c.name"),
    ("trunks = 3", "trunks"),
    ("[sip\nudp_port = 1", "config"),  # not TOML
])
def test_bad_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    path = write(tmp_path, toml)
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert info.value.key == key, str(info.value)
    assert str(info.value).startswith(key + ":")
    assert isinstance(info.value, ValueError)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(environ={"RTPCORE_SIP_UDP_PORT": "fifty"})
    assert info.value.key == "sip.udp_port"
    assert info.value.source == "RTPCORE_SIP_UDP_PORT"
    assert "RTPCORE_SIP_UDP_PORT" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load(environ={"RTPCORE_MEDIA_SRTP": "sometimes"})
    assert (info.value.key, info.value.source) == ("media.srtp", "RTPCORE_MEDIA_SRTP")


def test_environment_for_a_missing_trunk(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load(write(tmp_path, FULL), environ={"RTPCORE_TRUNKS_NOPE_PASSWORD": "x"})
    assert info.value.key == "trunks.nope_password"


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[media]\nsrtp = \"maybe\"")
    with pytest.raises(ConfigError) as info:
        load(path, environ={})
    assert info.value.source == str(path)
    with pytest.raises(ConfigError) as info:
        load(tmp_path / "missing.toml", environ={})
    assert info.value.key == "config"


def test_python_construction_is_checked_too() -> None:
    from rtpcore.gateway.config import MediaSettings
    with pytest.raises(ConfigError) as info:
        GatewayConfig(media=MediaSettings(srtp="always"))
    assert info.value.key == "media.srtp"


def test_cli_reports_a_bad_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rtpcore.cli import main
    path = write(tmp_path, "[media]\ncodecs = [\"OPUS\"]")
    assert main(["gateway", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "media.codecs" in err and "OPUS" in err


def test_the_readme_example_loads(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("## Gateway"):]
    example = section[section.index("```toml") + len("```toml"):]
    example = example[:example.index("```")]
    for name in ("cert.pem", "key.pem"):  # the TLS files must exist
        (tmp_path / name).write_text("")
        example = example.replace(f'"{name}"', f'"{tmp_path / name}"')
    config = load(write(tmp_path, example), environ={})
    assert config.trunk("carrier").destination == ("UDP", "198.51.100.7", 5060)
    assert config.sip.tls_port == 5061 and config.logging.format == "json"
