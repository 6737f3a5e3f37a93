"""Outbound calls: phone numbers, caller ID, the per-trunk rate limit, call status.

::

    from rtpcore.gateway.outbound import Outbound

    outbound = Outbound(gateway)                 # one per Gateway: it keeps the limiters
    call = await outbound.place_call("+1 650 253 0000", agent="ws://127.0.0.1:8765",
                                     caller_id="+15550100", caller_name="Acme",
                                     status_callback="http://127.0.0.1:9000/status")

- Numbers are parsed and formatted to E.164 with ``phonenumbers``; a number
  written without its country code is read in the default region (the
  ``region`` given to ``Outbound``, else the country of the trunk's
  ``caller_id``). A number that cannot be one raises ``ValueError`` saying
  why (too short, unknown country code ...). A ``sip:``/``sips:`` URI is
  dialled as it is.
- Caller ID goes out twice, as carriers expect: in the From header (the
  number as its user, the name as its display name) and as a
  ``P-Asserted-Identity`` header, ``"Name" <sip:+E164@trunk-domain;user=phone>``
  (RFC 3325).
- Each trunk's ``cps`` is enforced by a token bucket that fails fast:
  a call over the limit raises ``CallRateExceeded`` (with the time until the
  next one is allowed) before anything is sent, instead of queueing calls
  behind a limit the caller cannot see.
- The outcome is reported Twilio-style: ``status_callback`` (an HTTP URL
  that gets Twilio's form-encoded status callback, or a Python callable that
  gets a ``CallStatus``) hears ``in-progress`` on answer and then one final
  status, ``completed`` / ``busy`` / ``no-answer`` / ``failed`` with the SIP
  response code; ``place_call`` raises ``CallFailed`` for the failures.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import TYPE_CHECKING

import phonenumbers

from rtpcore.errors import CallFailed, CallRateExceeded
from rtpcore.sip import parse_uri

if TYPE_CHECKING:
    from rtpcore.gateway.agent import Agent
    from rtpcore.gateway.bridge import CallReport, GatewayCall
    from rtpcore.gateway.config import TrunkSettings
    from rtpcore.gateway.server import Gateway

__all__ = [
    "CallRateLimiter",
    "CallStatus",
    "CallerID",
    "Outbound",
    "StatusCallback",
    "to_e164",
    "twilio_call_status",
]

log = logging.getLogger("rtpcore.gateway")

_POSSIBLE_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "has an unknown country code",
    phonenumbers.ValidationResult.TOO_SHORT: "is too short",
    phonenumbers.ValidationResult.TOO_LONG: "is too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "has a length no number of its country has",
}


def check_region(region: str | None, argument: str = "region") -> str | None:
    """``region`` upper-cased if it is one ``phonenumbers`` knows (ISO 3166 alpha-2)."""
    if region is None:
        return None
    code = region.upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"{argument}: {region!r} is not a region code such as 'US' or 'GB'")
    return code


def to_e164(number: str, region: str | None = None, *, argument: str = "number") -> str:
    """``number`` in E.164 (``+15551234567``).

    Written without a leading ``+`` (or ``00``), the number is read as a
    national number of ``region``. Accepted: any number of a length its
    country's plan allows (``phonenumbers.is_possible_number``), so that
    test ranges such as +1 555 are not refused; ``ValueError`` otherwise,
    naming ``argument`` and the reason.
    """
    if not isinstance(number, str):
        raise TypeError(f"{argument}: expected a string, got {type(number).__name__}")
    region = check_region(region)
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.INVALID_COUNTRY_CODE:
            written_with_one = region is not None or number.lstrip().startswith("+")
            why = ("has an unknown country code" if written_with_one else "has no country "
                   "code: write it as +<country><number> or set a default region")
        else:
            why = {
                phonenumbers.NumberParseException.NOT_A_NUMBER: "is not a phone number",
                phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD:
                    "is too short after the international prefix",
                phonenumbers.NumberParseException.TOO_SHORT_NSN: "is too short",
                phonenumbers.NumberParseException.TOO_LONG: "is too long",
            }.get(exc.error_type, f"cannot be read: {exc}")
        raise ValueError(f"{argument}: {number!r} {why}") from None
    verdict = phonenumbers.is_possible_number_with_reason(parsed)
    if verdict not in (phonenumbers.ValidationResult.IS_POSSIBLE,
                       phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY):
        reason = _POSSIBLE_REASONS.get(verdict, "is not a possible number")
        raise ValueError(f"{argument}: {number!r} {reason} "
                         f"(+{parsed.country_code} {parsed.national_number})")
    e164 = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if len(e164) > 16:  # '+' and at most 15 digits (E.164 section 6.2.1)
        raise ValueError(f"{argument}: {number!r} is too long for E.164 ({e164})")
    # Some national forms (runs of zeros) format to a string that reads back
    # as another number; a number must mean the same on its way out.
    try:
        again = phonenumbers.format_number(phonenumbers.parse(e164, None),
                                           phonenumbers.PhoneNumberFormat.E164)
    except phonenumbers.NumberParseException:
        again = None
    if again != e164:
        raise ValueError(f"{argument}: {number!r} is not a possible number ({e164})")
    return e164


def region_of(number: str) -> str | None:
    """The main region of an E.164 number's country code (``+1...`` -> ``US``)."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return None
    if parsed.country_code is None:
        return None
    region: str = phonenumbers.region_code_for_country_code(parsed.country_code)
    return None if region == phonenumbers.UNKNOWN_REGION else region


@dataclass(frozen=True)
class CallerID:
    """Who the call says it is from: an E.164 number and an optional name."""

    number: str
    name: str | None = None

    def __post_init__(self) -> None:
        if not (self.number.startswith("+") and self.number[1:].isdigit()):
            raise ValueError(f"caller_id: {self.number!r} is not E.164 (use CallerID.parse)")
        if self.name is not None and any(ord(c) < 0x20 or c == "\x7f" for c in self.name):
            # A CR/LF in a header value would start a header of the caller's choosing.
            raise ValueError(f"caller_name: control characters are not allowed: {self.name!r}")

    @classmethod
    def parse(cls, number: str, name: str | None = None,
              region: str | None = None) -> CallerID:
        return cls(to_e164(number, region, argument="caller_id"), name or None)

    def uri(self, domain: str) -> str:
        """``sip:+15550100@domain;user=phone`` (RFC 3966 numbers in SIP URIs)."""
        return f"sip:{self.number}@{domain};user=phone"

    def p_asserted_identity(self, domain: str) -> str:
        """The ``P-Asserted-Identity`` value (RFC 3325), display name quoted."""
        if self.name is None:
            return f"<{self.uri(domain)}>"
        quoted = self.name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{self.uri(domain)}>'


class CallRateLimiter:
    """Calls per second through one trunk: a token bucket that fails fast.

    The bucket holds up to ``max(1, cps)`` calls and refills at ``cps`` per
    second; ``acquire(now)`` takes one or raises ``CallRateExceeded`` with the
    time until the next call is allowed. ``cps`` 0 means no limit. Time is
    an argument (seconds on any monotonic clock).
    """

    def __init__(self, trunk: str, cps: float) -> None:
        if not (cps >= 0 and math.isfinite(cps)):
            raise ValueError(f"cps: must be a finite number >= 0, got {cps!r}")
        self.trunk = trunk
        self.cps = float(cps)
        self.capacity = max(1.0, self.cps)
        self._tokens = self.capacity
        self._stamp: float | None = None

    def acquire(self, now: float) -> None:
        if self.cps == 0:
            return
        if self._stamp is not None and now > self._stamp:
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.cps)
        if self._stamp is None or now > self._stamp:
            self._stamp = now  # a clock read that went back refills nothing
        if self._tokens < 1.0:
            raise CallRateExceeded(self.trunk, self.cps, (1.0 - self._tokens) / self.cps)
        self._tokens -= 1.0


def twilio_call_status(status_code: int) -> str:
    """The Twilio ``CallStatus`` for a SIP final response to our INVITE.

    486 Busy Here, 600 Busy Everywhere and 603 Decline: ``busy``; 408, 480
    and 487 (no answer before the timeout, which CANCELs): ``no-answer``;
    any other error: ``failed``; 2xx: ``in-progress``.
    """
    if 200 <= status_code < 300:
        return "in-progress"
    if status_code in (486, 600, 603):
        return "busy"
    if status_code in (408, 480, 487):
        return "no-answer"
    return "failed"


@dataclass(frozen=True)
class CallStatus:
    """One status report about an outbound call (see ``twilio_call_status``)."""

    call_sid: str | None
    status: str
    from_number: str
    to_number: str
    sip_response_code: int | None = None
    reason: str = ""
    duration_s: float | None = None

    def twilio_form(self, account_sid: str, sequence: int) -> dict[str, str]:
        """The form fields of Twilio's status callback request."""
        form = {
            "CallSid": self.call_sid or "",
            "AccountSid": account_sid,
            "From": self.from_number,
            "To": self.to_number,
            "CallStatus": self.status,
            "Direction": "outbound-api",
            "ApiVersion": "2010-04-01",
            "CallbackSource": "call-progress-events",
            "SequenceNumber": str(sequence),
            "Timestamp": formatdate(usegmt=True),
        }
        if self.sip_response_code is not None:
            form["SipResponseCode"] = str(self.sip_response_code)
        if self.duration_s is not None:
            form["CallDuration"] = str(round(self.duration_s))
        return form


StatusCallback = str | Callable[[CallStatus], Awaitable[None] | None]

#: How long a status callback's HTTP request may take.
CALLBACK_TIMEOUT_S = 5.0


@dataclass
class _Watch:
    """An answered call whose final status is still to be reported."""

    callback: StatusCallback
    from_number: str
    to_number: str
    sequence: int


class Outbound:
    """Places calls through a ``Gateway`` (see the module doc).

    ``region``: the default region for numbers written without a country
    code (else the country of the trunk's ``caller_id``). ``clock`` gives the
    time the rate limiters run on.
    """

    def __init__(self, gateway: Gateway, *, region: str | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.gateway = gateway
        self.region = check_region(region)
        self._clock = clock
        self._limiters = {t.name: CallRateLimiter(t.name, t.cps) for t in gateway.config.trunks}
        self._watching: dict[str, _Watch] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        gateway.add_listener(self)

    # --- addressing --------------------------------------------------------------------

    def trunk_for(self, trunk: str | None) -> TrunkSettings | None:
        """The named trunk, or the only one configured; ValueError otherwise."""
        trunks = self.gateway.config.trunks
        if trunk is not None:
            try:
                return self.gateway.config.trunk(trunk)
            except KeyError:
                known = ", ".join(t.name for t in trunks) or "none configured"
                raise ValueError(f"trunk: no trunk named {trunk!r} ({known})") from None
        if len(trunks) > 1:
            raise ValueError(f"trunk: {len(trunks)} trunks are configured "
                             f"({', '.join(t.name for t in trunks)}): name one")
        return trunks[0] if trunks else None

    def default_region(self, trunk: TrunkSettings | None) -> str | None:
        if self.region is not None:
            return self.region
        if trunk is not None and trunk.caller_id is not None:
            return region_of(trunk.caller_id)
        return None

    def target(self, to: str, trunk: TrunkSettings | None) -> tuple[str, str]:
        """(request URI, number as reported) for ``to``: a phone number
        (through ``trunk``) or a SIP URI (dialled as it is)."""
        if to.lower().startswith(("sip:", "sips:")):
            uri = parse_uri(to, "to")
            return to, uri.user or str(uri)
        number = to_e164(to, self.default_region(trunk), argument="to")
        if trunk is None:
            raise ValueError(f"to: {number} is a phone number, which needs a trunk to "
                             "go out through (or give a sip: URI)")
        return f"sip:{number}@{_trunk_domain(trunk)};user=phone", number

    def caller_id(self, trunk: TrunkSettings | None, number: str | None,
                  name: str | None) -> CallerID | None:
        number = number or (trunk.caller_id if trunk is not None else None)
        if number is None:
            return None
        return CallerID.parse(number, name, self.default_region(trunk))

    # --- placing calls -----------------------------------------------------------------

    async def place_call(self, to: str, *, trunk: str | None = None,
                         caller_id: str | None = None, caller_name: str | None = None,
                         agent: Agent | str | None = None, early_media: bool = True,
                         timeout: float = 60.0,
                         status_callback: StatusCallback | None = None) -> GatewayCall:
        """Call ``to`` and bridge the answered call to ``agent`` (the
        gateway's agent when None). Returns the connected call; raises
        ``ValueError`` (bad number, unknown trunk), ``CallRateExceeded`` (over
        the trunk's cps, nothing sent) or ``CallFailed`` (busy, no answer
        within ``timeout`` s, or another failure: ``status_code`` says which).
        """
        if not 0 < timeout <= 600:
            raise ValueError(f"timeout: 0..600 s, got {timeout!r}")
        settings = self.trunk_for(trunk)
        target_uri, to_number = self.target(to, settings)
        identity = self.caller_id(settings, caller_id, caller_name)
        domain = _trunk_domain(settings) if settings is not None else parse_uri(target_uri).host
        headers = ({"P-Asserted-Identity": identity.p_asserted_identity(domain)}
                   if identity is not None else {})
        from_uri = identity.uri(domain) if identity is not None else None
        from_number = identity.number if identity is not None else ""
        if settings is not None:
            self._limiters[settings.name].acquire(self._clock())  # fails fast, nothing sent
        log.info("placing call", extra={"event": "call_placing", "to": to_number,
                                        "from": from_number,
                                        "trunk": settings.name if settings else None})
        try:
            call = await self.gateway.dial(target_uri, trunk=settings.name if settings else None,
                                           from_uri=from_uri,
                                           from_name=identity.name if identity else None,
                                           headers=headers, agent=agent,
                                           early_media=early_media, timeout=timeout)
        except CallFailed as exc:
            status = CallStatus(exc.call_sid, twilio_call_status(exc.status_code), from_number,
                                to_number, exc.status_code, exc.reason)
            log.info("call not answered", extra={
                "event": "call_not_answered", "call_sid": exc.call_sid, "to": to_number,
                "status": status.status, "status_code": exc.status_code,
                "reason": exc.reason})
            if status_callback is not None:
                self._report(status_callback, status, sequence=0)
            raise
        if status_callback is not None:
            self._report(status_callback, CallStatus(call.call_sid, "in-progress", from_number,
                                                     to_number, 200), sequence=0)
            self._watching[call.call_sid] = _Watch(status_callback, from_number, to_number, 1)
        return call

    # --- gateway listener: the final status of answered calls -------------------------

    def call_ended(self, call: GatewayCall, report: CallReport) -> None:
        watch = self._watching.pop(call.call_sid, None)
        if watch is None:
            return
        self._report(watch.callback, CallStatus(call.call_sid, "completed", watch.from_number,
                                                watch.to_number, 200, report.hangup_cause,
                                                report.duration_s), watch.sequence)

    async def drain(self) -> None:
        """Wait for the status callbacks under way (before shutting down)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def _report(self, callback: StatusCallback, status: CallStatus, sequence: int) -> None:
        task = asyncio.get_running_loop().create_task(self._deliver(callback, status, sequence))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _deliver(self, callback: StatusCallback, status: CallStatus,
                       sequence: int) -> None:
        # A callback that fails is logged: the call itself is not its business.
        try:
            if isinstance(callback, str):
                await post_status_callback(callback, status.twilio_form(
                    self.gateway.account_sid, sequence))
            else:
                result = callback(status)
                if inspect.isawaitable(result):
                    await result
        except Exception as exc:
            log.warning("status callback failed: %s", exc, extra={
                "event": "status_callback_failed", "call_sid": status.call_sid,
                "status": status.status})


async def post_status_callback(url: str, form: dict[str, str]) -> None:
    """POST Twilio's status callback form to ``url``; raises on a non-2xx answer."""
    import aiohttp

    timeout = aiohttp.ClientTimeout(total=CALLBACK_TIMEOUT_S)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        async with session.post(url, data=form) as response:
            if response.status >= 300:
                raise RuntimeError(f"{url} answered {response.status} {response.reason}")


def _trunk_domain(trunk: TrunkSettings) -> str:
    """The host the trunk's numbers live at: its registrar's, else its proxy's."""
    if trunk.registrar is not None:
        return str(parse_uri(trunk.registrar).host)
    destination = trunk.destination
    if destination is None:
        raise ValueError(f"trunk: {trunk.name!r} has neither registrar nor proxy to call "
                         "through")
    _, host, port = destination
    host = f"[{host}]" if ":" in host else host
    return f"{host}:{port}" if port != 5060 else host
