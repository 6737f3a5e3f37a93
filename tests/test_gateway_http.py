"""The gateway's HTTP side against the Gateway contract (a double): the
Twilio REST subset driven by Pipecat's own TwilioFrameSerializer hang-up and
by aiohttp as a plain client, POST /calls, and /metrics read back with
prometheus_client's own parser."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from gateway_doubles import FakeCall, FakeGateway, Report
from prometheus_client.parser import text_string_to_metric_families

from rtpcore.gateway.config import GatewayConfig, HTTPSettings, TrunkSettings
from rtpcore.gateway.http import GatewayHTTP
from rtpcore.gateway.metrics import GatewayMetrics, GCPauses

TOKEN = "s3cret-token"
PBX = TrunkSettings(name="pbx", proxy="127.0.0.1:5080", cps=1, caller_id="+15550100")
BUSY = "sip:+15557654321@127.0.0.1:5080;user=phone"


class Server:
    def __init__(self, gateway: FakeGateway, http: GatewayHTTP, base: str) -> None:
        self.gateway, self.http, self.base = gateway, http, base

    @property
    def auth(self) -> dict[str, str]:
        return _basic(self.gateway.account_sid, TOKEN)

    def call_url(self, call_sid: str, account_sid: str | None = None) -> str:
        account = account_sid or self.gateway.account_sid
        return f"{self.base}/2010-04-01/Accounts/{account}/Calls/{call_sid}.json"


async def _serve(token: str | None) -> tuple[FakeGateway, GatewayHTTP, str]:
    config = GatewayConfig(trunks=(PBX,), http=HTTPSettings(auth_token=token))
    gateway = FakeGateway(config, outcomes={BUSY: 486})
    http = GatewayHTTP(gateway)
    host, port = await http.start("127.0.0.1", 0)
    return gateway, http, f"http://{host}:{port}"


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    gateway, http, base = await _serve(TOKEN)
    try:
        yield Server(gateway, http, base)
    finally:
        await http.stop()


def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": aiohttp.encode_basic_auth(user, password)}


async def _request(method: str, url: str, auth: dict[str, str] | None = None,
                   **kwargs: Any) -> tuple[int, Any, Any]:
    kwargs["headers"] = {**kwargs.get("headers", {}), **(auth or {})}
    async with aiohttp.ClientSession() as session, session.request(method, url,
                                                                   **kwargs) as response:
        body = await (response.json() if response.content_type == "application/json"
                      else response.text())
        return response.status, body, response.headers


# --- Pipecat's auto hang-up -----------------------------------------------------------


async def test_pipecat_serializer_hangs_the_call_up(server: Server) -> None:
    """Pipecat's TwilioFrameSerializer, given our base_url, ends the call on
    EndFrame exactly as it would end a Twilio call; a second hang-up of the
    ended call gets the 20404 Pipecat treats as "already terminated"."""
    from pipecat.frames.frames import EndFrame
    from pipecat.serializers.twilio import TwilioFrameSerializer

    call = server.gateway.inbound()
    serializer = TwilioFrameSerializer(call.stream_sid, call.call_sid, server.gateway.account_sid,
                                       TOKEN, base_url=server.base)
    assert await serializer.serialize(EndFrame()) is None
    assert call.state == "ended" and call.hangup_causes == ["REST Status=completed"]
    assert call.call_sid not in server.gateway.calls

    again = TwilioFrameSerializer(call.stream_sid, call.call_sid, server.gateway.account_sid,
                                  TOKEN, base_url=server.base)
    status, body, _ = await _request("POST", server.call_url(call.call_sid),
                                     data={"Status": "completed"}, auth=server.auth)
    assert status == 404 and body["code"] == 20404
    await again.serialize(EndFrame())  # logs "already terminated", raises nothing


async def test_pipecat_with_a_wrong_token_does_not_hang_up(server: Server) -> None:
    from pipecat.frames.frames import EndFrame
    from pipecat.serializers.twilio import TwilioFrameSerializer

    call = server.gateway.inbound()
    serializer = TwilioFrameSerializer(call.stream_sid, call.call_sid, server.gateway.account_sid,
                                       "wrong", base_url=server.base)
    await serializer.serialize(EndFrame())
    assert call.state == "connected"


# --- the Call resource ----------------------------------------------------------------


async def test_hangup_answers_with_twilios_call_resource(server: Server) -> None:
    call = server.gateway.inbound()
    status, body, _ = await _request("POST", server.call_url(call.call_sid),
                                     data={"Status": "completed"}, auth=server.auth)
    assert status == 200
    assert body["sid"] == call.call_sid and body["account_sid"] == server.gateway.account_sid
    assert body["status"] == "completed" and body["direction"] == "inbound"
    assert body["to"] == "+15550100" and body["from"] == "+15550199"
    assert body["api_version"] == "2010-04-01"
    assert body["uri"] == f"/2010-04-01/Accounts/{call.account_sid}/Calls/{call.call_sid}.json"
    assert body["duration"] == "0" and body["end_time"].endswith("+0000")
    for key in ("date_created", "date_updated", "start_time", "price", "parent_call_sid",
                "answered_by", "caller_name", "subresource_uris"):
        assert key in body


async def test_fetch_a_running_call(server: Server) -> None:
    call = server.gateway.inbound()
    status, body, _ = await _request("GET", server.call_url(call.call_sid), auth=server.auth)
    assert status == 200 and body["status"] == "in-progress" and body["end_time"] is None
    assert call.state == "connected"


async def test_canceled_only_ends_a_call_that_rings(server: Server) -> None:
    call = server.gateway.inbound()
    status, body, _ = await _request("POST", server.call_url(call.call_sid),
                                     data={"Status": "canceled"}, auth=server.auth)
    assert status == 200 and body["status"] == "in-progress" and call.state == "connected"
    ringing = FakeCall(server.gateway, "outbound", "+15550100", "+15551234567")
    server.gateway.calls[ringing.call_sid] = ringing
    status, body, _ = await _request("POST", server.call_url(ringing.call_sid),
                                     data={"Status": "canceled"}, auth=server.auth)
    assert status == 200 and ringing.hangup_causes == ["REST Status=canceled"]


@pytest.mark.parametrize("auth", [None, ("AC" + "0" * 32, "wrong"), ("ACother", TOKEN)])
async def test_bad_credentials_get_twilios_401(server: Server,
                                               auth: tuple[str, str] | None) -> None:
    call = server.gateway.inbound()
    status, body, headers = await _request(
        "POST", server.call_url(call.call_sid), data={"Status": "completed"},
        auth=_basic(*auth) if auth else None)
    assert status == 401 and body["code"] == 20003
    assert headers["WWW-Authenticate"].startswith("Basic")
    assert call.state == "connected"


async def test_garbage_authorization_header_is_a_401(server: Server) -> None:
    status, body, _ = await _request("GET", server.call_url("CA" + "0" * 32),
                                     headers={"Authorization": "Basic !!!not-base64"})
    assert status == 401 and body["code"] == 20003


async def test_unknown_call_account_or_status(server: Server) -> None:
    call = server.gateway.inbound()
    status, body, _ = await _request("POST", server.call_url("CA" + "f" * 32),
                                     data={"Status": "completed"}, auth=server.auth)
    assert status == 404 and body["code"] == 20404
    other = server.call_url(call.call_sid, account_sid="AC" + "9" * 32)
    status, body, _ = await _request("POST", other, data={"Status": "completed"},
                                     auth=server.auth)
    assert status == 404 and call.state == "connected"
    status, body, _ = await _request("POST", server.call_url(call.call_sid),
                                     data={"Status": "in-progress"}, auth=server.auth)
    assert status == 400 and "Status: 'completed' or 'canceled'" in body["message"]
    assert call.state == "connected"


async def test_without_an_auth_token_the_rest_api_is_off() -> None:
    gateway, http, base = await _serve(None)
    try:
        call = gateway.inbound()
        url = f"{base}/2010-04-01/Accounts/{gateway.account_sid}/Calls/{call.call_sid}.json"
        status, body, _ = await _request("POST", url, data={"Status": "completed"},
                                         auth=_basic(gateway.account_sid, ""))
        assert status == 403 and "set http.auth_token" in body["message"]
        assert call.state == "connected"
        status, _, _ = await _request("GET", f"{base}/metrics")
        assert status == 200
    finally:
        await http.stop()


# --- POST /calls ----------------------------------------------------------------------


async def test_place_a_call(server: Server) -> None:
    status, body, _ = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                     json={"to": "+1 555 123 4567", "caller_name": "Acme",
                                           "agent": "ws://127.0.0.1:8765"})
    assert status == 201 and body["status"] == "in-progress"
    assert body["direction"] == "outbound-api" and body["sip_response_code"] == 200
    assert body["sid"] in server.gateway.calls
    dial = server.gateway.dialed[0]
    assert dial["target_uri"] == "sip:+15551234567@127.0.0.1:5080;user=phone"
    assert dial["agent"] == "ws://127.0.0.1:8765"
    assert dial["headers"]["P-Asserted-Identity"].startswith('"Acme" <sip:+15550100@')


async def test_place_a_call_with_a_form_body_and_busy_callee(server: Server) -> None:
    status, body, _ = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                     data={"to": "+15557654321", "timeout": "20"})
    assert status == 200 and body["status"] == "busy" and body["sip_response_code"] == 486
    assert body["sid"].startswith("CA") and server.gateway.dialed[0]["timeout"] == 20


async def test_cps_limit_is_a_429_with_retry_after(server: Server) -> None:
    first, _, _ = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                 json={"to": "+15551234567"})
    second, body, headers = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                           json={"to": "+15551234567"})
    assert (first, second) == (201, 429)
    assert headers["Retry-After"] == "1" and "over its limit of 1 calls per second" in \
        body["message"]
    assert len(server.gateway.dialed) == 1


@pytest.mark.parametrize(("payload", "message"), [
    ({"to": "hello"}, "to: 'hello' "),
    ({}, "to: a phone number or a sip: URI is needed"),
    ({"to": "+15551234567", "timeout": "soon"}, "timeout: a number of seconds"),
    ({"to": "+15551234567", "trunk": 7}, "trunk: a string"),
    ({"to": "+15551234567", "colour": "red"}, "unknown field(s): colour"),
    ([1, 2], "body: a JSON object"),
])
async def test_bad_calls_are_400s_naming_the_field(server: Server, payload: Any,
                                                   message: str) -> None:
    status, body, _ = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                     json=payload)
    assert status == 400 and message in body["message"]
    assert server.gateway.dialed == []


async def test_place_call_needs_auth(server: Server) -> None:
    status, _, _ = await _request("POST", f"{server.base}/calls", json={"to": "+15551234567"})
    assert status == 401 and server.gateway.dialed == []


# --- /metrics -------------------------------------------------------------------------


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_time_the_garbage_collectors_pauses() -> None:
    """Each collection is timed once, by generation, whatever the number of
    gateways' metrics in the process (one callback for the process)."""
    first, second = GatewayMetrics(), GatewayMetrics()
    assert gc.callbacks.count(GCPauses.installed()._callback) == 1

    def full(metrics: GatewayMetrics) -> tuple[float, float, list[float]]:
        samples = _samples(metrics.render().decode())
        key = (("generation", "2"),)
        buckets = [value for (name, labels), value in samples.items()
                   if name == "rtpcore_gateway_gc_pause_seconds_bucket"
                   and dict(labels)["generation"] == "2"]
        return (samples[("rtpcore_gateway_gc_pause_seconds_count", key)],
                samples[("rtpcore_gateway_gc_pause_seconds_sum", key)], buckets)

    count, seconds, _ = full(first)
    for _ in range(3):
        gc.collect()
    now, now_seconds, buckets = full(first)
    assert now >= count + 3 and now_seconds > seconds  # (an automatic one may add to them)
    assert buckets == sorted(buckets) and buckets[-1] == now  # cumulative, +Inf is the count
    assert full(second)[:2] == (now, now_seconds)


async def test_metrics_follow_the_calls(server: Server) -> None:
    gateway = server.gateway
    first = gateway.inbound()
    gateway.inbound()
    status, _, _ = await _request("POST", f"{server.base}/calls", auth=server.auth,
                                  json={"to": "+15557654321"})
    assert status == 200
    first.end("remote hangup", Report(duration_s=12.0, mos=4.1, loss_percent=2.0,
                                      jitter_ms=8.0, agent_errors={"slow_reader": 3}))
    status, text, headers = await _request("GET", f"{server.base}/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    samples = _samples(text)
    assert samples[("rtpcore_gateway_calls_active", (("direction", "inbound"),))] == 1
    assert samples[("rtpcore_gateway_calls_total", (("direction", "inbound"),))] == 2
    assert samples[("rtpcore_gateway_calls_total", (("direction", "outbound"),))] == 0
    assert samples[("rtpcore_gateway_calls_failed_total",
                    (("code", "486"), ("status", "busy")))] == 1
    assert samples[("rtpcore_gateway_call_setup_seconds_count",
                    (("direction", "inbound"),))] == 2
    assert samples[("rtpcore_gateway_call_setup_seconds_sum",
                    (("direction", "inbound"),))] == pytest.approx(0.084)
    assert samples[("rtpcore_gateway_call_mos_bucket", (("le", "4.0"),))] == 0
    assert samples[("rtpcore_gateway_call_mos_bucket", (("le", "4.2"),))] == 1
    assert samples[("rtpcore_gateway_call_loss_ratio_sum", ())] == pytest.approx(0.02)
    assert samples[("rtpcore_gateway_call_jitter_seconds_sum", ())] == pytest.approx(0.008)
    assert samples[("rtpcore_gateway_call_duration_seconds_sum", ())] == 12.0
    assert samples[("rtpcore_gateway_agent_errors_total", (("kind", "slow_reader"),))] == 3


async def test_two_gateways_keep_their_own_metrics() -> None:
    a, http_a, base_a = await _serve(TOKEN)
    b, http_b, base_b = await _serve(TOKEN)
    try:
        a.inbound()
        _, text_a, _ = await _request("GET", f"{base_a}/metrics")
        _, text_b, _ = await _request("GET", f"{base_b}/metrics")
        key = ("rtpcore_gateway_calls_active", (("direction", "inbound"),))
        assert _samples(text_a)[key] == 1 and _samples(text_b)[key] == 0
    finally:
        await http_a.stop()
        await http_b.stop()


async def test_http_does_not_log_credentials(server: Server,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    call = server.gateway.inbound()
    await _request("POST", server.call_url(call.call_sid), data={"Status": "completed"},
                   auth=server.auth)
    assert TOKEN not in caplog.text
