"""Outbound calls: E.164, caller ID, the per-trunk CPS limiter, call status
reporting, and place_call() over the Gateway contract (a double here; the
end-to-end calls are in test_gateway_interop.py)."""

from __future__ import annotations

import asyncio
import pickle
import re

import phonenumbers
import pytest
from aiohttp import web
from gateway_doubles import FakeGateway
from hypothesis import given, settings
from hypothesis import strategies as st

from rtpcore.errors import CallFailed, CallRateExceeded, RtpcoreError
from rtpcore.gateway.config import GatewayConfig, TrunkSettings
from rtpcore.gateway.outbound import (
    CallerID,
    CallRateLimiter,
    CallStatus,
    Outbound,
    to_e164,
    twilio_call_status,
)
from rtpcore.sip import parse_address

E164 = re.compile(r"^\+[1-9][0-9]{1,14}$")

# --- E.164 ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "region", "expected"), [
    ("+15551234567", None, "+15551234567"),           # test range: possible, not valid
    ("+1 (650) 253-0000", None, "+16502530000"),
    ("(650) 253-0000", "US", "+16502530000"),
    ("650.253.0000", "us", "+16502530000"),            # region in any case
    ("011 44 20 7946 0958", "US", "+442079460958"),    # US international prefix
    ("020 7946 0958", "GB", "+442079460958"),          # national trunk prefix dropped
    ("00 33 1 42 68 53 00", "FR", "+33142685300"),
    ("+49 30 901820", None, "+4930901820"),
    ("tel:+1-650-253-0000", None, "+16502530000"),
])
def test_to_e164_formats(text: str, region: str | None, expected: str) -> None:
    assert to_e164(text, region) == expected


@pytest.mark.parametrize(("text", "region", "reason"), [
    ("6502530000", None, "has no country code"),
    ("hello", "US", "is not a phone number"),
    ("+999 1234567", None, "unknown country code"),
    ("+1 555 12", None, "too short"),
    ("+1 555 123 456 789 0", None, "too long"),
    ("12", "US", "too short"),
    ("10000000000000", "DE", "too long for E.164"),  # possible in DE's plan, 16 digits
    ("000000", "DE", "not a possible number"),  # formats to +4900000, which reads back as +490000
])
def test_to_e164_says_why_it_refuses(text: str, region: str | None, reason: str) -> None:
    with pytest.raises(ValueError, match=f"^to: {re.escape(repr(text))} .*{reason}"):
        to_e164(text, region, argument="to")


def test_to_e164_bad_region_and_type() -> None:
    with pytest.raises(ValueError, match="region: 'XX' is not a region code"):
        to_e164("6502530000", "XX")
    with pytest.raises(TypeError, match="number: expected a string, got int"):
        to_e164(15551234567)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+0123456789 ()-.x#*abc", max_size=24),
       st.sampled_from([None, "US", "GB", "DE", "IN", "BR"]))
def test_to_e164_returns_e164_or_a_value_error(text: str, region: str | None) -> None:
    """Any input: a canonical E.164 string that phonenumbers reads back as the
    same possible number, or a ValueError (never another exception)."""
    try:
        number = to_e164(text, region)
    except ValueError:
        return
    assert E164.match(number)
    again = phonenumbers.parse(number, None)
    assert phonenumbers.is_possible_number(again)
    assert to_e164(number) == number  # idempotent


# --- caller ID ----------------------------------------------------------------------


def test_caller_id_headers_parse_back_with_our_sip_parser() -> None:
    identity = CallerID.parse("(650) 253-0000", 'Acme "Support" \\ Desk', region="US")
    assert identity.number == "+16502530000"
    pai = identity.p_asserted_identity("sip.carrier.example")
    address = parse_address(pai)
    assert address.display_name == 'Acme "Support" \\ Desk'
    assert str(address.uri.user) == "+16502530000"
    assert address.uri.host == "sip.carrier.example"
    assert address.uri.params["user"] == "phone"
    assert CallerID("+15550100").p_asserted_identity("h") == "<sip:+15550100@h;user=phone>"


@pytest.mark.parametrize("name", ["Evil\r\nX-Injected: 1", "tab\there", "nul\x00"])
def test_caller_name_with_control_characters_is_refused(name: str) -> None:
    with pytest.raises(ValueError, match="caller_name: control characters"):
        CallerID("+15550100", name)


def test_caller_id_must_be_e164() -> None:
    with pytest.raises(ValueError, match="caller_id: '5550100' is not E.164"):
        CallerID("5550100")


# --- the CPS limiter ----------------------------------------------------------------


def test_limiter_allows_one_second_of_calls_then_fails_fast() -> None:
    limiter = CallRateLimiter("carrier", 5)
    for _ in range(5):
        limiter.acquire(100.0)
    with pytest.raises(CallRateExceeded) as info:
        limiter.acquire(100.0)
    assert info.value.trunk == "carrier" and info.value.cps == 5
    assert info.value.retry_after == pytest.approx(0.2)
    assert "trunk 'carrier': over its limit of 5 calls per second" in str(info.value)
    with pytest.raises(CallRateExceeded) as info:
        limiter.acquire(100.15)  # 0.75 of a token back: still 0.05 s to wait
    assert info.value.retry_after == pytest.approx(0.05)
    limiter.acquire(100.2)
    with pytest.raises(CallRateExceeded):
        limiter.acquire(100.2)


def test_limiter_fractional_rate_and_no_limit() -> None:
    slow = CallRateLimiter("t", 0.5)  # one call every 2 s, burst of 1
    slow.acquire(0.0)
    with pytest.raises(CallRateExceeded) as info:
        slow.acquire(1.0)
    assert info.value.retry_after == pytest.approx(1.0)
    slow.acquire(2.0)
    unlimited = CallRateLimiter("t", 0)
    for _ in range(10000):
        unlimited.acquire(0.0)


def test_limiter_clock_going_back_gives_no_tokens() -> None:
    limiter = CallRateLimiter("t", 1)
    limiter.acquire(10.0)
    with pytest.raises(CallRateExceeded):
        limiter.acquire(5.0)
    with pytest.raises(CallRateExceeded):
        limiter.acquire(10.5)  # counted from 5.0 would have refilled; from 10.0 it has not


@pytest.mark.parametrize("cps", [-1, float("nan"), float("inf")])
def test_limiter_refuses_bad_rates(cps: float) -> None:
    with pytest.raises(ValueError, match="cps: must be a finite number >= 0"):
        CallRateLimiter("t", cps)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.1, max_value=50),
       st.lists(st.floats(min_value=0, max_value=0.5), min_size=1, max_size=300))
def test_limiter_never_exceeds_its_rate(cps: float, gaps: list[float]) -> None:
    """Over any window of any request pattern, admitted calls <= burst + cps * window;
    and a refusal's retry_after is exactly when the next call gets through."""
    limiter = CallRateLimiter("t", cps)
    now, admitted = 0.0, []
    for gap in gaps:
        now += gap
        try:
            limiter.acquire(now)
        except CallRateExceeded as exc:
            assert exc.retry_after > 0
            probe = CallRateLimiter("t", cps)
            probe.__dict__.update(limiter.__dict__)
            with pytest.raises(CallRateExceeded):
                probe.acquire(now + exc.retry_after * 0.999)
            probe.__dict__.update(limiter.__dict__)
            probe.acquire(now + exc.retry_after * 1.001)
            continue
        admitted.append(now)
    for i, start in enumerate(admitted):
        for j in range(i, len(admitted)):
            window = admitted[j] - start
            assert j - i + 1 <= max(1.0, cps) + cps * window + 1e-9


def test_errors_pickle_and_sit_in_the_tree() -> None:
    for exc in (CallRateExceeded("t", 2.0, 0.25), CallFailed(486, "Busy Here", "CA" + "0" * 32)):
        again = pickle.loads(pickle.dumps(exc))
        assert isinstance(again, RtpcoreError)
        assert again.args == exc.args and again.__dict__ == exc.__dict__


# --- Twilio call status -------------------------------------------------------------


def test_twilio_status_for_every_final_response() -> None:
    for code in range(200, 700):
        status = twilio_call_status(code)
        if code < 300:
            assert status == "in-progress"
        elif code in (486, 600, 603):
            assert status == "busy"
        elif code in (408, 480, 487):
            assert status == "no-answer"
        else:
            assert status == "failed"


def test_status_callback_form_is_twilios() -> None:
    form = CallStatus("CA" + "1" * 32, "busy", "+15550100", "+15551234567", 486,
                      "Busy Here").twilio_form("AC" + "2" * 32, 3)
    assert form["CallSid"] == "CA" + "1" * 32 and form["AccountSid"] == "AC" + "2" * 32
    assert form["CallStatus"] == "busy" and form["SipResponseCode"] == "486"
    assert form["Direction"] == "outbound-api" and form["ApiVersion"] == "2010-04-01"
    assert form["SequenceNumber"] == "3" and "CallDuration" not in form
    assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", form["Timestamp"])


# --- place_call over the Gateway contract ---------------------------------------------


def _config(*trunks: TrunkSettings) -> GatewayConfig:
    return GatewayConfig(trunks=trunks)


CARRIER = TrunkSettings(name="carrier", registrar="sip:sip.carrier.example",
                        username="acct", password="pw", cps=2, caller_id="+15550100")
PBX = TrunkSettings(name="pbx", proxy="127.0.0.1:5080", caller_id="+442079460000")


async def test_place_call_through_the_trunk() -> None:
    gateway = FakeGateway(_config(CARRIER))
    outbound = Outbound(gateway, clock=lambda: 0.0)
    call = await outbound.place_call("(650) 253-0000", caller_name="Acme", agent="ws://a")
    dial = gateway.dialed[0]
    assert dial["target_uri"] == "sip:+16502530000@sip.carrier.example;user=phone"
    assert dial["trunk"] == "carrier" and dial["agent"] == "ws://a"
    assert dial["from_uri"] == "sip:+15550100@sip.carrier.example;user=phone"
    assert dial["from_name"] == "Acme"
    assert dial["headers"] == {
        "P-Asserted-Identity": '"Acme" <sip:+15550100@sip.carrier.example;user=phone>'}
    assert call.state == "connected"


async def test_region_comes_from_the_trunk_caller_id_or_is_given() -> None:
    gateway = FakeGateway(_config(PBX))
    await Outbound(gateway).place_call("020 7946 0958")
    assert gateway.dialed[-1]["target_uri"] == "sip:+442079460958@127.0.0.1:5080;user=phone"
    await Outbound(gateway, region="US").place_call("650 253 0000", caller_id="+15550100")
    assert gateway.dialed[-1]["target_uri"] == "sip:+16502530000@127.0.0.1:5080;user=phone"
    with pytest.raises(ValueError, match="region: 'ZZ'"):
        Outbound(gateway, region="ZZ")


async def test_sip_uri_dialled_as_is_and_numbers_need_a_trunk() -> None:
    gateway = FakeGateway(_config())
    outbound = Outbound(gateway)
    await outbound.place_call("sip:bob@127.0.0.1:5090")
    assert gateway.dialed[-1]["target_uri"] == "sip:bob@127.0.0.1:5090"
    assert gateway.dialed[-1]["trunk"] is None and gateway.dialed[-1]["headers"] == {}
    with pytest.raises(ValueError, match=r"to: \+15551234567 is a phone number, which needs "
                                         "a trunk"):
        await outbound.place_call("+15551234567")


async def test_trunk_choice_errors() -> None:
    gateway = FakeGateway(_config(CARRIER, PBX))
    outbound = Outbound(gateway)
    with pytest.raises(ValueError, match=r"trunk: 2 trunks are configured \(carrier, pbx\)"):
        await outbound.place_call("+15551234567")
    with pytest.raises(ValueError, match="trunk: no trunk named 'nope' \\(carrier, pbx\\)"):
        await outbound.place_call("+15551234567", trunk="nope")
    with pytest.raises(ValueError, match="timeout: 0..600 s"):
        await outbound.place_call("+15551234567", trunk="pbx", timeout=0)
    assert gateway.dialed == []


async def test_cps_limit_fails_fast_without_dialling() -> None:
    gateway = FakeGateway(_config(CARRIER))
    now = [0.0]
    outbound = Outbound(gateway, clock=lambda: now[0])
    await outbound.place_call("+15551234567")
    await outbound.place_call("+15551234567")
    with pytest.raises(CallRateExceeded) as info:
        await outbound.place_call("+15551234567")
    assert info.value.retry_after == pytest.approx(0.5)
    assert len(gateway.dialed) == 2
    now[0] = 0.5
    await outbound.place_call("+15551234567")
    assert len(gateway.dialed) == 3


@pytest.mark.parametrize(("code", "status"), [(486, "busy"), (487, "no-answer"),
                                              (480, "no-answer"), (503, "failed"),
                                              (603, "busy")])
async def test_failure_reaches_an_in_process_callback_with_the_sip_cause(
        code: int, status: str) -> None:
    gateway = FakeGateway(_config(PBX), outcomes={
        "sip:+15551234567@127.0.0.1:5080;user=phone": code})
    outbound = Outbound(gateway)
    heard: list[CallStatus] = []
    with pytest.raises(CallFailed) as info:
        await outbound.place_call("+15551234567", status_callback=heard.append)
    await outbound.drain()
    assert info.value.status_code == code
    assert [(s.status, s.sip_response_code, s.call_sid) for s in heard] == [
        (status, code, info.value.call_sid)]
    assert heard[0].to_number == "+15551234567" and heard[0].from_number == "+442079460000"


async def test_status_callback_over_http_like_twilio() -> None:
    """A WS agent hears the outcome the way Twilio tells it: form POSTs to its
    status callback URL, in-progress on answer and completed at the end."""
    received: list[dict[str, str]] = []

    async def collect(request: web.Request) -> web.Response:
        received.append(dict(await request.post()))
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/status", collect)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        gateway = FakeGateway(_config(PBX), outcomes={
            "sip:+15557654321@127.0.0.1:5080;user=phone": 486})
        outbound = Outbound(gateway)
        url = f"http://127.0.0.1:{port}/status"
        call = await outbound.place_call("+15551234567", status_callback=url)
        await outbound.drain()
        call.end("remote hangup")
        await outbound.drain()
        with pytest.raises(CallFailed):
            await outbound.place_call("+15557654321", status_callback=url)
        await outbound.drain()
    finally:
        await runner.cleanup()
    assert [(r["CallStatus"], r.get("SipResponseCode")) for r in received] == [
        ("in-progress", "200"), ("completed", "200"), ("busy", "486")]
    assert received[0]["CallSid"] == received[1]["CallSid"] == call.call_sid
    assert received[1]["CallDuration"] == "0" and received[1]["SequenceNumber"] == "1"
    assert all(r["AccountSid"] == gateway.account_sid for r in received)


async def test_a_failing_status_callback_does_not_touch_the_call(
        caplog: pytest.LogCaptureFixture) -> None:
    gateway = FakeGateway(_config(PBX))
    outbound = Outbound(gateway)

    async def broken(status: CallStatus) -> None:
        raise RuntimeError("agent server down")

    call = await outbound.place_call("+15551234567", status_callback=broken)
    await outbound.drain()
    await outbound.place_call("+15551234567", status_callback="http://127.0.0.1:9/none")
    await asyncio.wait_for(outbound.drain(), 10)
    assert call.state == "connected"
    assert [r.message.split(":")[0] for r in caplog.records
            if getattr(r, "event", "") == "status_callback_failed"] == [
        "status callback failed"] * 2
