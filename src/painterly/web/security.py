"""The guard in front of every request and WebSocket (an ASGI middleware).

A local web app is reachable by every page the user's browser visits, so:

- every request needs the per-launch token: in the address (``?token=``, the link the server
  prints), a header (``X-Painterly-Token``, sent by the page's script) or the cookie the
  page gets on its first load;
- ``Host`` must be one of ours (a rebinding DNS name pointing at 127.0.0.1 is refused);
- every request that changes something (not GET/HEAD) must carry the token in the header —
  a cookie alone does not count, since a cross-site form would send it — and, when the
  browser says where it comes from, ``Origin`` must be ours and ``Sec-Fetch-Site`` must not
  be cross-site; WebSocket upgrades are checked the same way (browsers always send Origin);
- every response says what it is and how it may be used: a content-security policy that
  allows only the page's own script and style, ``nosniff``, no framing, no referrer.
"""
from __future__ import annotations

import hmac
import json
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

SAFE_METHODS = ("GET", "HEAD")
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()),
           (b"x-content-type-options", b"nosniff"),
           (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"),
           (b"cross-origin-opener-policy", b"same-origin"),
           (b"cross-origin-resource-policy", b"same-origin")]


def cookie_names(port: int) -> tuple[str, str]:
    """The token and session cookies; cookies are shared by every port of a host, so the
    names carry the port."""
    return f"painterly_token_{port}", f"painterly_session_{port}"


class Guard:
    """Token, Host, Origin and Sec-Fetch-Site checks, and the safety headers."""

    def __init__(self, app, token: str, hosts: set[str], origins: set[str], port: int):
        self.app, self.token, self.hosts, self.origins = app, token, hosts, origins
        self.token_cookie, _ = cookie_names(port)

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        refusal = self.refusal(scope)
        if refusal is not None:
            return await _refuse(scope, receive, send, refusal)

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": list(message.get("headers", [])) + HEADERS}
            await send(message)

        return await self.app(scope, receive, with_headers)

    def refusal(self, scope) -> str | None:
        """Why a request is refused (None: it may go on)."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers", [])}
        if headers.get("host", "").lower() not in self.hosts:
            return "this address is not painterly's (unexpected Host)"
        changes = scope["type"] == "websocket" or scope.get("method") not in SAFE_METHODS
        if changes:
            origin = headers.get("origin")
            if origin is not None and origin.lower() not in self.origins:
                return "requests from other sites are refused"
            if headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
                return "requests from other sites are refused"
        offered = self._offered_tokens(scope, headers, header_only=changes and
                                       scope["type"] == "http")
        if not any(hmac.compare_digest(t.encode(), self.token.encode()) for t in offered):
            return "the token is missing or wrong: open the address `painterly web` printed"
        return None

    def _offered_tokens(self, scope, headers, header_only: bool) -> list[str]:
        offered = [headers.get("x-painterly-token", "")]
        if header_only:
            return offered
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        offered += query.get("token", [])
        cookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed Cookie header is no token
            return offered
        if self.token_cookie in cookie:
            offered.append(cookie[self.token_cookie].value)
        return offered


async def _refuse(scope, receive, send, reason: str) -> None:
    if scope["type"] == "websocket":
        # Closing before accepting makes the server answer the upgrade with 403.
        await send({"type": "websocket.close", "code": 1008})
        return
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": 403,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())] + HEADERS})
    await send({"type": "http.response.body", "body": body})
