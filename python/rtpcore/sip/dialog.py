"""Dialogs (RFC 3261 section 12): the state two user agents share for a call."""

from __future__ import annotations

import secrets

from rtpcore.errors import SIPError
from rtpcore.sip import URI, Headers, Request, Response, parse_address

__all__ = ["Dialog", "new_tag", "new_branch", "new_call_id"]


def new_tag() -> str:
    return secrets.token_hex(6)


def new_branch() -> str:
    """A branch with the RFC 3261 magic cookie (section 8.1.1.7)."""
    return "z9hG4bK" + secrets.token_hex(8)


def new_call_id(host: str) -> str:
    return secrets.token_hex(10) + "@" + host


class Dialog:
    """Identifiers, sequence numbers, remote target and route set of a dialog.

    Created by ``from_uas`` (we answered a request) or ``from_uac`` (we got a
    response with a To tag). ``create_request`` builds in-dialog requests
    (section 12.2.1.1); ``check_request`` enforces the remote CSeq order
    (section 12.2.2).
    """

    def __init__(self, call_id: str, local_tag: str, remote_tag: str, local_uri: str,
                 remote_uri: str, local_seq: int, remote_seq: int | None, remote_target: URI,
                 route_set: list[str], secure: bool = False) -> None:
        self.call_id = call_id
        self.local_tag = local_tag
        self.remote_tag = remote_tag
        self.local_uri = local_uri
        self.remote_uri = remote_uri
        self.local_seq = local_seq
        self.remote_seq = remote_seq
        self.remote_target = remote_target
        self.route_set = route_set
        self.secure = secure

    @property
    def id(self) -> tuple[str, str, str]:
        return (self.call_id, self.local_tag, self.remote_tag)

    @classmethod
    def from_uas(cls, request: Request, local_tag: str) -> Dialog:
        contacts = request.contacts
        if not contacts:
            raise SIPError("dialog-creating request without Contact", 400, "Missing Contact")
        from_ = request.from_
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=from_.tag or "",
            local_uri=str(request.to.uri),
            remote_uri=str(from_.uri),
            local_seq=0,
            remote_seq=request.cseq.seq,
            remote_target=contacts[0].uri,
            route_set=request.headers.get_all("Record-Route"),
            secure=request.uri.scheme == "sips",
        )

    @classmethod
    def from_uac(cls, request: Request, response: Response) -> Dialog:
        contacts = response.contacts
        target = contacts[0].uri if contacts else request.uri
        return cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=str(request.from_.uri),
            remote_uri=str(request.to.uri),
            local_seq=request.cseq.seq,
            remote_seq=None,
            remote_target=target,
            route_set=list(reversed(response.headers.get_all("Record-Route"))),
            secure=request.uri.scheme == "sips",
        )

    def update_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE, their 2xx) may move the peer."""
        contacts = message.contacts
        if contacts:
            self.remote_target = contacts[0].uri

    def check_request(self, request: Request) -> None:
        """Raise SIPError(500) for an in-dialog request out of CSeq order."""
        seq = request.cseq.seq
        if request.method in ("ACK", "CANCEL"):
            return
        if self.remote_seq is not None and seq <= self.remote_seq:
            raise SIPError("CSeq lower than the last one in this dialog", 500,
                           "Server Internal Error")
        self.remote_seq = seq

    def create_request(self, method: str, contact: str, body: bytes = b"",
                       content_type: str | None = None, seq: int | None = None) -> Request:
        """An in-dialog request (the caller adds the Via)."""
        if seq is None:
            self.local_seq += 1
            seq = self.local_seq
        route_set = self.route_set
        uri = self.remote_target
        headers = Headers()
        if route_set and "lr" not in parse_address(route_set[0]).uri.params:
            # strict router (section 12.2.1.1): it goes in the Request-URI
            uri = parse_address(route_set[0]).uri
            route_set = route_set[1:] + [f"<{self.remote_target}>"]
        for route in route_set:
            headers.add("Route", route)
        headers.add("Max-Forwards", "70")
        headers.add("From", f"<{self.local_uri}>;tag={self.local_tag}")
        headers.add("To", f"<{self.remote_uri}>;tag={self.remote_tag}")
        headers.add("Call-ID", self.call_id)
        headers.add("CSeq", f"{seq} {method}")
        headers.add("Contact", contact)
        if content_type is not None:
            headers.add("Content-Type", content_type)
        return Request(method, uri, headers, body)
