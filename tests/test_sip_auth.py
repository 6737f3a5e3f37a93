"""Digest authentication: RFC vectors, client/server round trips, nonces."""

from __future__ import annotations

import pytest
from rtpcore.sip.auth import (
    Challenge,
    Credentials,
    DigestClient,
    DigestServer,
    digest_response,
    parse_auth_params,
)

from rtpcore.sip import Response, parse_message


def test_rfc2617_vector() -> None:
    # RFC 2617 section 3.5
    assert digest_response("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life", "GET",
                           "/dir/index.html", "dcd98b7102dd2f0e8b11d0f600bfb0c093", "auth",
                           "00000001", "0a4f113b") == "6629fae49393a05397450978507c4ef1"


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ("SHA-256", "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"),
    ],
)
def test_rfc7616_vectors(algorithm: str, expected: str) -> None:
    # RFC 7616 section 3.9.1
    assert digest_response(algorithm, "Mufasa", "http-auth@example.org", "Circle of Life", "GET",
                           "/dir/index.html", "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
                           "auth", "00000001",
                           "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ") == expected


def test_parse_auth_params() -> None:
    scheme, params = parse_auth_params(
        'Digest realm="a, \\"b\\"",nonce=xyz , qop="auth,auth-int", stale=TRUE')
    assert scheme == "Digest"
    assert params == {"realm": 'a, "b"', "nonce": "xyz", "qop": "auth,auth-int", "stale": "TRUE"}
    challenge = Challenge.parse('Digest realm="r", nonce="n", algorithm=sha-512-256, qop="auth"')
    assert challenge is not None and challenge.algorithm == "SHA-512-256" and challenge.qop == ("auth",)
    assert Challenge.parse('Digest realm="r", nonce="n", algorithm=SHA-1') is None
    assert Challenge.parse('Basic realm="r"') is None


def register():  # type: ignore[no-untyped-def]
    return parse_message(
        b"REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n"
        b"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:alice@example.com>\r\n"
        b"Call-ID: reg1\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n")


def challenge_response(server: DigestServer, now: float) -> Response:
    response = Response(407 if server.proxy else 401)
    for value in server.challenges(now):
        response.headers.add(server.challenge_header, value)
    return response


@pytest.mark.parametrize("algorithms", [("SHA-512-256", "SHA-256", "MD5"), ("SHA-256",), ("MD5",)])
@pytest.mark.parametrize("proxy", [False, True])
def test_client_server_round_trip(algorithms: tuple[str, ...], proxy: bool) -> None:
    server = DigestServer("example.com", {"alice": "s3cret"}.get, algorithms, proxy=proxy)
    req = register()
    first = server.verify(req, 0.0)
    assert not first.ok and first.status_code == (407 if proxy else 401)
    client = DigestClient([Credentials("alice", "s3cret", "example.com")])
    assert client.authorize(req, challenge_response(server, 0.0))
    header = req.headers.get("Proxy-Authorization" if proxy else "Authorization")
    assert f"algorithm={algorithms[0]}" in header and "nc=00000001" in header
    assert server.verify(req, 1.0).username == "alice"
    # the same header again is a replay
    assert server.verify(req, 1.5).status_code == 403


def test_nonce_counting_and_stale_nonce() -> None:
    server = DigestServer("example.com", {"alice": "s3cret"}.get, nonce_lifetime=60)
    client = DigestClient([Credentials("alice", "s3cret")])
    challenge = Challenge.parse(server.challenges(0.0)[0])
    assert challenge is not None
    req = register()
    for n in range(1, 4):
        req.headers.set("Authorization", client.credentials_header(req, challenge, client.credentials[0]))
        assert f"nc={n:08x}" in req.headers.get("Authorization")
        assert server.verify(req, float(n)).ok
    req.headers.set("Authorization", client.credentials_header(req, challenge, client.credentials[0]))
    stale = server.verify(req, 120.0)
    assert not stale.ok and stale.status_code == 401 and "stale=true" in stale.challenges[0]


def test_answer_within_the_millisecond_of_the_challenge_is_accepted() -> None:
    # 0.0006 would round up to 0.001, dating the nonce after the answer
    server = DigestServer("example.com", {"alice": "s3cret"}.get)
    req = register()
    client = DigestClient([Credentials("alice", "s3cret", "example.com")])
    assert client.authorize(req, challenge_response(server, 0.0006))
    assert server.verify(req, 0.0007).ok


def test_nonces_issued_in_the_same_instant_differ() -> None:
    server = DigestServer("example.com", {}.get)
    assert server.make_nonce(5.0) != server.make_nonce(5.0)


def test_wrong_password_forged_nonce_and_unknown_user_are_challenged() -> None:
    server = DigestServer("example.com", {"alice": "s3cret"}.get)
    req = register()
    for creds in (Credentials("alice", "wrong"), Credentials("mallory", "s3cret")):
        client = DigestClient([creds])
        client.authorize(req, challenge_response(server, 0.0))
        result = server.verify(req, 1.0)
        assert not result.ok and result.status_code == 401 and result.challenges
    forged = Challenge("example.com", "bm90LW91cnM6bm9uY2U", "SHA-256", ("auth",))
    client = DigestClient([Credentials("alice", "s3cret")])
    req.headers.set("Authorization", client.credentials_header(req, forged, client.credentials[0]))
    assert server.verify(req, 1.0).status_code == 401
    req.headers.set("Authorization", "Digest garbage")
    assert server.verify(req, 1.0).status_code == 400


def test_client_picks_the_first_supported_challenge_and_matching_realm() -> None:
    response = Response(401)
    response.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n1", algorithm=SHA-1, qop="auth"')
    response.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n2", algorithm=SHA-256, qop="auth"')
    response.headers.add("WWW-Authenticate", 'Digest realm="r", nonce="n3", algorithm=MD5, qop="auth"')
    req = register()
    assert DigestClient([Credentials("u", "p", "r")]).authorize(req, response)
    assert 'nonce="n2"' in req.headers.get("Authorization")
    assert not DigestClient([Credentials("u", "p", "other-realm")]).authorize(register(), response)


def test_server_rejects_unknown_algorithms_in_config() -> None:
    with pytest.raises(ValueError, match="algorithms"):
        DigestServer("r", {}.get, ("SHA-1",))
