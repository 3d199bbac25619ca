"""The caller's network address, believing X-Forwarded-For only from trusted proxies.

Each proxy appends the address it received the request from, so the header reads
`client, proxy1, proxy2` and the direct peer is the last proxy. Walking it from the right,
the first address that is not a trusted proxy is the client: anything left of it was
written by the client itself and proves nothing. A peer that is not a trusted proxy is
the client, whatever the header says.

uvicorn applies the same rule when `server_options` hands it the trusted proxies (so the
scheme from X-Forwarded-Proto is believed from them alone too); applying it again here is
harmless (the peer it leaves is either untrusted, so kept, or the header's left-most
address, found again) and keeps the app right under any other ASGI server.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from starlette.requests import HTTPConnection

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
UNKNOWN = "unknown"


def client_address(connection: HTTPConnection, trusted: Sequence[Network]) -> str:
    """The client's address for throttling and audit: the peer, or from X-Forwarded-For
    when the peer is one of `trusted`."""
    peer = connection.client.host if connection.client else None
    if not peer:
        return UNKNOWN
    if not trusted or not _is_trusted(peer, trusted):
        return _normal(peer)
    forwarded = connection.headers.getlist("x-forwarded-for")
    return forwarded_client(peer, forwarded, trusted)


def forwarded_client(peer: str, forwarded: Iterable[str], trusted: Sequence[Network]) -> str:
    """The right-most address of `forwarded` (headers in order) that is not trusted; the
    left-most when all are (a trusted host calling through trusted proxies)."""
    hops = [hop for value in forwarded for hop in (part.strip() for part in value.split(","))]
    hops = [_host(hop) for hop in hops if hop]
    if not hops:
        return _normal(peer)
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return _normal(hop)
    return _normal(hops[0])


def _host(hop: str) -> str:
    """`203.0.113.7:5123` → `203.0.113.7`, `[2001:db8::1]:443` → `2001:db8::1`."""
    if hop.startswith("["):
        return hop[1 : hop.find("]")] if "]" in hop else hop
    if hop.count(":") == 1:
        return hop.rsplit(":", 1)[0]
    return hop


def _is_trusted(host: str, trusted: Sequence[Network]) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # "unknown", an obfuscated token: never a trusted proxy
    return any(address in network for network in trusted)


def _normal(host: str) -> str:
    """One spelling per address (IPv6 compressed, IPv4-mapped as IPv4), so a client cannot
    get fresh throttle buckets by writing its address another way; at most 64 characters."""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)
