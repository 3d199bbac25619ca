"""Security headers on every HTTP response: the API's, its errors', the docs' and the
console's.

A response that sets its own `Content-Security-Policy` keeps it (the console's is stricter
than any default). JSON and other non-page answers get a policy that allows nothing: a
browser that is tricked into rendering one runs no script and frames nothing. An HTML page
without its own policy (Swagger UI, ReDoc) gets one that allows this origin and exactly
the inline scripts the page carries, by hash. `Strict-Transport-Security` goes out only
over TLS: uvicorn terminating it, or a proxy in `DISPATCH_TRUSTED_PROXIES` saying
`X-Forwarded-Proto: https` (uvicorn believes that header from those proxies alone, see
`server_options`, and sets the scheme from it).
"""

from __future__ import annotations

import base64
import hashlib
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Nothing the service offers needs these; a page it serves may not ask for them either.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)
HSTS = "max-age=31536000; includeSubDomains"
_INLINE_SCRIPT = re.compile(rb"<script(?![^>]*\bsrc=)[^>]*>(.*?)</script>", re.DOTALL)


def page_policy(html: bytes) -> str:
    """The policy of an HTML page that brings none: scripts, styles, images and fetches
    from this origin, and its own inline scripts by SHA-256."""
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(html)
    )
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self'{hashes}",
            # Swagger UI and ReDoc style their widgets from script at run time.
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data:",
            "worker-src 'self' blob:",  # ReDoc reads the document in a worker
            "connect-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
            "form-action 'self'",
        ]
    )


def security_headers(scope: Scope) -> dict[str, str]:
    """The headers every response carries, the content security policy aside."""
    headers = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": PERMISSIONS_POLICY,
    }
    if scope.get("scheme") == "https":
        headers["Strict-Transport-Security"] = HSTS
    return headers


class SecurityHeaders:
    """Pure ASGI: adds `security_headers` and a Content-Security-Policy to every HTTP
    response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope)
        page: Message | None = None  # an HTML start held back until its body is known
        body: list[bytes] = []

        async def send_with_headers(message: Message) -> None:
            nonlocal page
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers.setdefault(name, value)
                if "content-security-policy" in headers:
                    await send(message)
                elif headers.get("content-type", "").startswith("text/html"):
                    page = message
                else:
                    headers["Content-Security-Policy"] = API_POLICY
                    await send(message)
                return
            if page is None or message["type"] != "http.response.body":
                await send(message)
                return
            body.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            html = b"".join(body)
            MutableHeaders(scope=page)["Content-Security-Policy"] = page_policy(html)
            await send(page)
            await send({"type": "http.response.body", "body": html})

        await self.app(scope, receive, send_with_headers)
