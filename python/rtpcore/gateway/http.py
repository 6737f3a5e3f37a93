"""The gateway's HTTP side (aiohttp): a Twilio REST subset, outbound calls, metrics.

==================================================================  ==========================
``POST /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``     ``Status=completed`` hangs
                                                                    the call up (what Pipecat's
                                                                    ``TwilioFrameSerializer``
                                                                    sends on ``EndFrame``);
                                                                    ``Status=canceled`` only
                                                                    one not answered yet
``GET  /2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json``     the call resource
``POST /calls``                                                     place a call (JSON or form:
                                                                    ``to``, ``from``,
                                                                    ``caller_name``, ``trunk``,
                                                                    ``agent``, ``timeout``,
                                                                    ``status_callback``)
``GET  /metrics``                                                   Prometheus text format
==================================================================  ==========================

The REST endpoints take HTTP Basic auth as Twilio's do: the account SID as
user name and ``http.auth_token`` from the config as password; without an
auth token configured they answer 403. Answers are Twilio's JSON call
resource, and Twilio's error shape (``{"code": 20404, "message": ...,
"more_info": ..., "status": 404}``) for errors: Pipecat reads the 20404 of
a call that has already ended as "nothing to do".

``/metrics`` needs no auth: listen on an address only the scraper reaches.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any

from aiohttp import web

from rtpcore.errors import CallFailed, CallRateExceeded
from rtpcore.gateway.metrics import CONTENT_TYPE, GatewayMetrics
from rtpcore.gateway.outbound import Outbound, twilio_call_status

if TYPE_CHECKING:
    from rtpcore.gateway.bridge import GatewayCall
    from rtpcore.gateway.server import Gateway

__all__ = ["GatewayHTTP", "call_resource"]

log = logging.getLogger("rtpcore.gateway.http")

API_VERSION = "2010-04-01"
_STATUS_OF_STATE = {"ringing": "ringing", "dialing": "ringing", "connected": "in-progress",
                    "ended": "completed"}


def _rfc2822(timestamp: float) -> str:
    """Twilio's date format: ``Sat, 21 Nov 2026 07:42:14 +0000``."""
    return time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(timestamp))


def call_resource(call: GatewayCall, status: str | None = None,
                  sip_response_code: int | None = None) -> dict[str, Any]:
    """``call`` as Twilio's Call resource (the JSON its REST API answers with).

    ``status`` overrides the status derived from the call's state (a call
    that failed before it was answered is still ``dialing`` when reported).
    """
    report = call.report()
    now = time.time()
    answered = call.setup_time_ms is not None
    ended = call.state == "ended"
    # The report counts from the answer; a call fetched while it runs ends "now".
    start = now - report.duration_s if answered else None
    uri = f"/{API_VERSION}/Accounts/{call.account_sid}/Calls/{call.call_sid}.json"
    resource: dict[str, Any] = {
        "sid": call.call_sid,
        "account_sid": call.account_sid,
        "parent_call_sid": None,
        "to": call.to_number,
        "to_formatted": call.to_number,
        "from": call.from_number,
        "from_formatted": call.from_number,
        "phone_number_sid": None,
        "status": status or _STATUS_OF_STATE.get(call.state, call.state),
        "start_time": _rfc2822(start) if start is not None else None,
        "end_time": _rfc2822(now) if ended and answered else None,
        "duration": str(round(report.duration_s)) if ended and answered else None,
        "date_created": _rfc2822(now - report.duration_s - (call.setup_time_ms or 0) / 1000),
        "date_updated": _rfc2822(now),
        "direction": "inbound" if call.direction == "inbound" else "outbound-api",
        "answered_by": None,
        "api_version": API_VERSION,
        "forwarded_from": None,
        "group_sid": None,
        "caller_name": None,
        "queue_time": "0",
        "trunk_sid": None,
        "price": None,
        "price_unit": "USD",
        "uri": uri,
        "subresource_uris": {},
    }
    if sip_response_code is not None:
        resource["sip_response_code"] = sip_response_code
    return resource


_CHALLENGE = {"WWW-Authenticate": 'Basic realm="Twilio API"'}


def _basic_credentials(header: str) -> tuple[bytes, bytes] | None:
    """(user, password) of an ``Authorization: Basic`` header (RFC 7617), or None."""
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except binascii.Error:
        return None
    user, colon, password = decoded.partition(b":")
    return (user, password) if colon else None


def _error(status: int, message: str, code: int | None = None,
           headers: dict[str, str] | None = None) -> web.Response:
    """Twilio's error body; ``code`` only where Twilio has one for the case."""
    body = {"code": code, "message": message, "status": status,
            "more_info": f"https://www.twilio.com/docs/errors/{code}" if code else None}
    return web.json_response(body, status=status, headers=headers)


class GatewayHTTP:
    """The HTTP server of one gateway (see the module doc).

    ``outbound`` and ``metrics`` default to new ones attached to ``gateway``;
    ``auth_token`` to the config's ``http.auth_token``.
    """

    def __init__(self, gateway: Gateway, *, outbound: Outbound | None = None,
                 metrics: GatewayMetrics | None = None, auth_token: str | None = None) -> None:
        self.gateway = gateway
        self.outbound = outbound if outbound is not None else Outbound(gateway)
        self.metrics = metrics if metrics is not None else GatewayMetrics().attach(gateway)
        self.auth_token = auth_token if auth_token is not None else \
            gateway.config.http.auth_token
        self.app = web.Application()
        calls = "/" + API_VERSION + "/Accounts/{account_sid}/Calls/{call_sid}.json"
        self.app.add_routes([
            web.post(calls, self._update_call),
            web.get(calls, self._fetch_call),
            web.post("/calls", self._place_call),
            web.get("/metrics", self._metrics),
        ])
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        """Listen on ``host:port`` (0: any free port); returns the address."""
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, host, port)
        await self._site.start()
        server = self._site._server
        assert server is not None  # invariant: started just above
        bound = server.sockets[0].getsockname()  # type: ignore[attr-defined]
        log.info("http listening", extra={"event": "http_listening",
                                          "address": f"{bound[0]}:{bound[1]}"})
        return bound[0], bound[1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        await self.outbound.drain()

    # --- auth ------------------------------------------------------------------------

    def _refuse(self, request: web.Request) -> web.Response | None:
        """An error answer if ``request`` may not use the REST API, else None."""
        if self.auth_token is None:
            return _error(403, "the REST API is off: set http.auth_token in the gateway's "
                          "configuration")
        credentials = _basic_credentials(request.headers.get("Authorization", ""))
        if credentials is None:
            return _error(401, "Authenticate", 20003, _CHALLENGE)
        user, password = credentials
        good_user = hmac.compare_digest(user, self.gateway.account_sid.encode())
        good_password = hmac.compare_digest(password, self.auth_token.encode())
        if not (good_user and good_password):
            return _error(401, "Authenticate", 20003, _CHALLENGE)
        return None

    # --- the Twilio Call resource -------------------------------------------------------

    def _find(self, request: web.Request) -> GatewayCall | web.Response:
        account_sid = request.match_info["account_sid"]
        call_sid = request.match_info["call_sid"]
        call = self.gateway.calls.get(call_sid)
        if account_sid != self.gateway.account_sid or call is None:
            return _error(404, f"The requested resource {request.path} was not found", 20404)
        return call

    async def _fetch_call(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        call = self._find(request)
        if isinstance(call, web.Response):
            return call
        return web.json_response(call_resource(call))

    async def _update_call(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        form = await request.post()
        status = form.get("Status")
        if status not in ("completed", "canceled"):
            return _error(400, f"Status: 'completed' or 'canceled', got {status!r}")
        call = self._find(request)
        if isinstance(call, web.Response):
            return call
        # Twilio: "canceled" ends a call only while it rings; "completed" any call.
        if status == "completed" or call.state != "connected":
            log.info("hang-up requested over REST", extra={
                "event": "rest_hangup", "call_sid": call.call_sid, "status": status})
            await call.hangup(cause=f"REST Status={status}")
        return web.json_response(call_resource(call))

    # --- outbound calls ---------------------------------------------------------------

    async def _place_call(self, request: web.Request) -> web.Response:
        refused = self._refuse(request)
        if refused is not None:
            return refused
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except json.JSONDecodeError as exc:
                return _error(400, f"body: not JSON: {exc}")
            if not isinstance(body, dict):
                return _error(400, "body: a JSON object")
            fields: dict[str, Any] = body
        else:
            fields = dict(await request.post())
        unknown = set(fields) - {"to", "from", "caller_name", "trunk", "agent", "timeout",
                                 "status_callback"}
        if unknown:
            return _error(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        to = fields.get("to")
        if not isinstance(to, str) or not to:
            return _error(400, "to: a phone number or a sip: URI is needed")
        try:
            timeout = float(fields.get("timeout", 60))
        except (TypeError, ValueError):
            return _error(400, f"timeout: a number of seconds, got {fields['timeout']!r}")
        strings = {}
        for name in ("from", "caller_name", "trunk", "agent", "status_callback"):
            value = fields.get(name)
            if value is not None and not isinstance(value, str):
                return _error(400, f"{name}: a string, got {value!r}")
            strings[name] = value or None
        try:
            call = await self.outbound.place_call(
                to, trunk=strings["trunk"], caller_id=strings["from"],
                caller_name=strings["caller_name"], agent=strings["agent"], timeout=timeout,
                status_callback=strings["status_callback"])
        except CallRateExceeded as exc:
            return _error(429, str(exc),
                          headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))})
        except CallFailed as exc:
            return web.json_response({
                "sid": exc.call_sid, "account_sid": self.gateway.account_sid,
                "status": twilio_call_status(exc.status_code),
                "sip_response_code": exc.status_code, "reason": exc.reason,
                "direction": "outbound-api", "api_version": API_VERSION})
        except ValueError as exc:
            return _error(400, str(exc))
        except RuntimeError as exc:  # the gateway is not started, or stopping
            return _error(503, str(exc))
        return web.json_response(call_resource(call, sip_response_code=200), status=201)

    # --- metrics ------------------------------------------------------------------------

    async def _metrics(self, request: web.Request) -> web.Response:
        response = web.Response(body=self.metrics.render())
        response.headers["Content-Type"] = CONTENT_TYPE
        return response
