"""SIP digest authentication (RFC 3261 section 22, RFC 8760, RFC 7616), sans-IO.

``DigestClient`` answers challenges (401/407) with credentials, counting
nonces (``nc``) and preferring the first algorithm it supports in the
server's order (RFC 8760 section 2.4). ``DigestServer`` issues challenges and
verifies credentials: its nonces are stateless (a timestamp signed with a
secret), expire after ``nonce_lifetime`` seconds (answered with
``stale=true``, RFC 7616 section 3.3) and their counts must increase, so a
captured Authorization header cannot be replayed. Time is an argument.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from rtpcore.errors import SIPError, SIPParseError
from rtpcore.sip import Request

__all__ = [
    "ALGORITHMS",
    "Challenge",
    "Credentials",
    "DigestClient",
    "DigestServer",
    "AuthResult",
    "parse_auth_params",
    "digest_response",
]

# Name as it appears in ``algorithm=`` -> hashlib name. RFC 8760 section 2.2.
ALGORITHMS = {
    "MD5": "md5",
    "MD5-sess": "md5",
    "SHA-256": "sha256",
    "SHA-256-sess": "sha256",
    "SHA-512-256": "sha512_256",
    "SHA-512-256-sess": "sha512_256",
}
_ALGORITHM_NAMES = {name.lower(): name for name in ALGORITHMS}
_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_\-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]*)\s*(?:,|$)')


def _hash(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], text.encode("utf-8")).hexdigest()


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """Split ``Digest realm="x", nonce="y", ...`` into scheme and parameters.

    Parameter names are lower-cased and quoted values unquoted. Raises
    ``SIPParseError`` (400) on malformed input.
    """
    scheme, _, rest = value.strip().partition(" ")
    if not scheme:
        raise SIPParseError("empty authentication header", None, "Authorization")
    params: dict[str, str] = {}
    pos = 0
    rest = rest.strip()
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            raise SIPParseError("malformed authentication parameter", None, "Authorization")
        raw = m.group(2)
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        params[m.group(1).lower()] = raw
        pos = m.end()
    return scheme, params


def digest_response(algorithm: str, username: str, realm: str, password: str, method: str,
                    uri: str, nonce: str, qop: str | None = None, nc: str = "",
                    cnonce: str = "", ha1: str | None = None) -> str:
    """The ``response`` value of RFC 7616 section 3.4.1 (RFC 2617 when qop is None).

    ``ha1`` may be given instead of ``password`` (a server that stores
    H(username:realm:password) rather than passwords).
    """
    if ha1 is None:
        ha1 = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        ha1 = _hash(algorithm, f"{ha1}:{nonce}:{cnonce}")
    ha2 = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{ha1}:{nonce}:{ha2}")
    return _hash(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")


@dataclass(frozen=True)
class Challenge:
    """One WWW-Authenticate / Proxy-Authenticate Digest challenge."""

    realm: str
    nonce: str
    algorithm: str = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    proxy: bool = False

    @classmethod
    def parse(cls, value: str, proxy: bool = False) -> Challenge | None:
        """The challenge in ``value``; None if it is not Digest or uses an
        algorithm we do not know."""
        scheme, params = parse_auth_params(value)
        if scheme.lower() != "digest":
            return None
        algorithm = _ALGORITHM_NAMES.get(params.get("algorithm", "MD5").lower())
        if algorithm is None or "realm" not in params or "nonce" not in params:
            return None
        qop = tuple(q.strip() for q in params.get("qop", "").split(",") if q.strip())
        return cls(params["realm"], params["nonce"], algorithm, qop, params.get("opaque"),
                   params.get("stale", "").lower() == "true", proxy)

    def header_value(self) -> str:
        parts = [f'realm="{self.realm}"', f'nonce="{self.nonce}"', f"algorithm={self.algorithm}"]
        if self.qop:
            parts.append(f'qop="{",".join(self.qop)}"')
        if self.opaque is not None:
            parts.append(f'opaque="{self.opaque}"')
        if self.stale:
            parts.append("stale=true")
        return "Digest " + ", ".join(parts)


@dataclass
class Credentials:
    """A username and password for one realm (``realm=None``: any realm)."""

    username: str
    password: str
    realm: str | None = None


@dataclass
class DigestClient:
    """Answers digest challenges for outgoing requests."""

    credentials: list[Credentials]
    _nonce_counts: dict[str, int] = field(default_factory=dict)

    def _credentials_for(self, realm: str) -> Credentials | None:
        for cred in self.credentials:
            if cred.realm == realm:
                return cred
        for cred in self.credentials:
            if cred.realm is None:
                return cred
        return None

    def authorize(self, request: Request, challenge_response: object) -> bool:
        """Add Authorization/Proxy-Authorization to ``request`` for the
        401/407 ``challenge_response``; False if no challenge can be met.

        The caller then sends ``request`` again with a new branch and CSeq.
        """
        headers = challenge_response.headers  # type: ignore[attr-defined]
        added = False
        for header, proxy in (("WWW-Authenticate", False), ("Proxy-Authenticate", True)):
            for value in headers.get_all(header):
                challenge = Challenge.parse(value, proxy)
                if challenge is None:
                    continue
                cred = self._credentials_for(challenge.realm)
                if cred is None:
                    continue
                name = "Proxy-Authorization" if proxy else "Authorization"
                request.headers.remove(name)
                request.headers.add(name, self.credentials_header(request, challenge, cred))
                added = True
                break  # RFC 8760 2.4: the first supported challenge of each kind
        return added

    def credentials_header(self, request: Request, challenge: Challenge,
                           cred: Credentials, cnonce: str | None = None) -> str:
        uri = str(request.uri)
        qop = "auth" if "auth" in challenge.qop else None
        count = self._nonce_counts.get(challenge.nonce, 0) + 1
        self._nonce_counts[challenge.nonce] = count
        nc = f"{count:08x}"
        if cnonce is None:
            cnonce = base64.b64encode(os.urandom(12)).decode("ascii")
        response = digest_response(challenge.algorithm, cred.username, challenge.realm,
                                   cred.password, request.method, uri, challenge.nonce, qop, nc,
                                   cnonce)
        parts = [f'username="{cred.username}"', f'realm="{challenge.realm}"',
                 f'nonce="{challenge.nonce}"', f'uri="{uri}"', f'response="{response}"',
                 f"algorithm={challenge.algorithm}"]
        if qop is not None:
            parts += [f"qop={qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        if challenge.opaque is not None:
            parts.append(f'opaque="{challenge.opaque}"')
        return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class AuthResult:
    """The outcome of ``DigestServer.verify``.

    ``ok`` with the authenticated ``username``; otherwise ``status_code``
    (401/407 to challenge again, 400 for malformed credentials, 403 for a
    replayed nonce count) and the challenge header values to send.
    """

    ok: bool
    username: str | None = None
    status_code: int = 200
    challenges: tuple[str, ...] = ()


class DigestServer:
    """Challenges requests and verifies their digest credentials.

    ``lookup(username)`` returns the user's password, or None for an unknown
    user. ``proxy=True`` uses 407 and the Proxy-* headers.
    """

    def __init__(self, realm: str, lookup: Callable[[str], str | None],
                 algorithms: tuple[str, ...] = ("SHA-256", "MD5"), nonce_lifetime: float = 300.0,
                 secret: bytes | None = None, proxy: bool = False,
                 max_tracked_nonces: int = 10000) -> None:
        for algorithm in algorithms:
            if algorithm not in ALGORITHMS or algorithm.endswith("-sess"):
                raise ValueError(f"algorithms: unsupported {algorithm!r}")
        self.realm = realm
        self.lookup = lookup
        self.algorithms = algorithms
        self.nonce_lifetime = nonce_lifetime
        self.proxy = proxy
        self._secret = secret if secret is not None else os.urandom(32)
        self._opaque = hashlib.sha256(self._secret + b"opaque").hexdigest()[:16]
        # nonce -> highest nc seen; bounded, oldest forgotten first
        self._counts: OrderedDict[str, int] = OrderedDict()
        self._max_tracked = max_tracked_nonces

    @property
    def challenge_header(self) -> str:
        return "Proxy-Authenticate" if self.proxy else "WWW-Authenticate"

    @property
    def credentials_header(self) -> str:
        return "Proxy-Authorization" if self.proxy else "Authorization"

    def make_nonce(self, now: float) -> str:
        # issue time and randomness: two challenges in one millisecond differ.
        # The time is truncated to whole milliseconds, never rounded: a nonce
        # stamped later than it was issued looks as if it came from the future
        # to an answer in the same half millisecond, and is refused.
        stamp = f"{int(now * 1000) / 1000:.3f}/{os.urandom(6).hex()}".encode()
        mac = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(stamp + b":" + mac).decode("ascii").rstrip("=")

    def _nonce_age(self, nonce: str, now: float) -> float | None:
        """Age of a nonce we issued, or None if it is not ours."""
        try:
            raw = base64.urlsafe_b64decode(nonce + "=" * (-len(nonce) % 4))
            stamp, mac = raw[:-17], raw[-16:]  # the MAC is 16 raw bytes after a ':'
            issued = float(stamp.split(b"/", 1)[0])
        except ValueError:
            return None
        if raw[-17:-16] != b":":
            return None
        expected = hmac.new(self._secret, stamp, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(mac, expected):
            return None
        return now - issued

    def challenges(self, now: float, stale: bool = False) -> tuple[str, ...]:
        """One challenge per algorithm, strongest first, sharing a nonce."""
        nonce = self.make_nonce(now)
        return tuple(Challenge(self.realm, nonce, algorithm, ("auth",), self._opaque,
                               stale).header_value() for algorithm in self.algorithms)

    def _reject(self, now: float, stale: bool = False) -> AuthResult:
        return AuthResult(False, None, 407 if self.proxy else 401, self.challenges(now, stale))

    def verify(self, request: Request, now: float) -> AuthResult:
        """Check ``request``'s credentials; see ``AuthResult``."""
        value = request.headers.get(self.credentials_header)
        if value is None:
            return self._reject(now)
        try:
            scheme, params = parse_auth_params(value)
        except SIPError:
            return AuthResult(False, None, 400)
        if scheme.lower() != "digest" or params.get("realm") != self.realm:
            return self._reject(now)
        algorithm = _ALGORITHM_NAMES.get(params.get("algorithm", "MD5").lower())
        nonce = params.get("nonce", "")
        if algorithm not in self.algorithms:
            return self._reject(now)
        age = self._nonce_age(nonce, now)
        if age is None or age < 0:
            return self._reject(now)
        username = params.get("username", "")
        password = self.lookup(username)
        qop = params.get("qop")
        # We always offer qop=auth; without it nothing protects against replay.
        if password is None or qop != "auth" or "response" not in params:
            return self._reject(now)
        nc = params.get("nc", "")
        expected = digest_response(algorithm, username, self.realm, password, request.method,
                                   params.get("uri", ""), nonce, qop, nc,
                                   params.get("cnonce", ""))
        if not hmac.compare_digest(expected, params["response"]):
            return self._reject(now)
        if params.get("uri") != str(request.uri):
            return AuthResult(False, None, 400)
        if age > self.nonce_lifetime:
            return self._reject(now, stale=True)  # right password, old nonce
        try:
            count = int(nc, 16)
        except ValueError:
            return AuthResult(False, None, 400)
        if count <= self._counts.get(nonce, 0):
            return AuthResult(False, None, 403)  # replayed
        self._counts[nonce] = count
        self._counts.move_to_end(nonce)
        while len(self._counts) > self._max_tracked:
            self._counts.popitem(last=False)
        return AuthResult(True, username)
