"""Where webhook requests may go: the server-side request forgery guard (OWASP API7).

A webhook URL names a host; the host is turned into addresses here (an IP literal, an IPv4
number in any of the forms resolvers accept — `2130706433`, `0x7f000001`, `127.1`,
`0177.0.0.1` —, `localhost`, or a DNS answer), and *every* address must be allowed:
none loopback, link-local (the cloud metadata address 169.254.169.254 among them),
unspecified, multicast, private, shared (CGNAT), reserved or documentation space, nor an
IPv6 form that carries one of those (IPv4-mapped, NAT64, 6to4), unless it lies in one of
the networks the operator opened (`DISPATCH_WEBHOOK_ALLOW_NETWORKS`; police CAD systems
often live on private networks).

The check runs when a subscription is registered and again for every connection a
delivery opens: `GuardedTransport` is httpx's transport over a connection pool whose
network backend resolves, checks, and then connects to the checked address itself, so a
DNS answer that changes between the check and the connection (rebinding) gains nothing.
The URL, and so the `Host` header, TLS SNI and certificate check, keep the real host name.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpcore
import httpx

IPAddress = IPv4Address | IPv6Address
IPNetwork = IPv4Network | IPv6Network
Resolver = Callable[[str, int], Awaitable[list[IPAddress]]]

# Where a webhook may not go unless DISPATCH_WEBHOOK_ALLOW_NETWORKS names the range.
# (IANA special-purpose registries; IPv4-mapped, NAT64 and 6to4 addresses are judged by
# the IPv4 address they carry.)
BLOCKED: tuple[tuple[IPNetwork, str], ...] = tuple(
    (ip_network(network), why)
    for network, why in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
        ("172.16.0.0/12", "private"),
        ("192.0.0.0/24", "reserved for protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast"),
        ("192.168.0.0/16", "private"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved (and broadcast)"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("::/96", "IPv4-compatible (deprecated)"),
        ("64:ff9b:1::/48", "local-use NAT64"),
        ("100::/64", "discard-only"),
        ("2001::/32", "Teredo"),
        ("2001:2::/48", "benchmarking"),
        ("2001:10::/28", "ORCHID"),
        ("2001:20::/28", "ORCHID"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated)"),
        ("ff00::/8", "multicast"),
    )
)
NAT64 = ip_network("64:ff9b::/96")
SIX_TO_FOUR = ip_network("2002::/16")
LOOPBACK: tuple[IPAddress, ...] = (IPv4Address("127.0.0.1"), IPv6Address("::1"))
MAX_ADDRESSES_TRIED = 4  # of a name's answer, in order, before the connection fails
_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$")


class EgressRefused(Exception):
    """The target may not be reached; the message says why (it goes to the API caller)."""


class Unresolved(Exception):
    """The host name has no address now (or the resolver did not answer in time)."""


def parse_networks(value: str | Iterable[str | IPNetwork]) -> list[IPNetwork]:
    """CIDRs from `10.20.0.0/16,fd00::/8` (or a list); ValueError naming a bad one."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    networks: list[IPNetwork] = []
    for part in parts:
        if isinstance(part, IPv4Network | IPv6Network):
            networks.append(part)
            continue
        text = part.strip()
        if not text:
            continue
        try:
            networks.append(ip_network(text))
        except ValueError as exc:
            raise ValueError(
                f"{text!r} is not a network in CIDR form such as 10.20.0.0/16 or fd00::/8 ({exc})"
            ) from None
    return networks


# Host names and numbers -------------------------------------------------------------------


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 number as the WHATWG URL standard (and inet_aton) reads it:
    `0x` hexadecimal, a leading 0 octal, else decimal; None if it is not a number."""
    digits, radix = part, 10
    if part[:2] in ("0x", "0X"):
        digits, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        digits, radix = part[1:], 8
    if digits == "":
        return 0 if radix != 10 else None
    allowed = {10: "0123456789", 8: "01234567", 16: "0123456789abcdefABCDEF"}[radix]
    if any(c not in allowed for c in digits):
        return None
    return int(digits, radix)


def numeric_ipv4(host: str) -> IPv4Address | None:
    """The IPv4 address a host written as a number names (`2130706433`, `0x7f000001`,
    `127.1`, `0177.0.0.1`, `127.0.0.1.`), None for a host name. A host whose last label
    is a number but which is no valid address is refused: resolvers disagree on those."""
    parts = host.split(".")
    if len(parts) > 1 and parts[-1] == "":
        parts.pop()
    last = parts[-1]
    hexadecimal = last[:2] in ("0x", "0X") and _ipv4_number(last) is not None
    if not (hexadecimal or re.fullmatch(r"[0-9]+", last)):
        return None
    numbers = [_ipv4_number(p) if p else None for p in parts]
    if len(parts) > 4 or any(n is None for n in numbers):
        raise EgressRefused(f"'{host}' is neither a host name nor a valid IPv4 address")
    values = typing.cast(list[int], numbers)
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        raise EgressRefused(f"'{host}' is neither a host name nor a valid IPv4 address")
    address = values[-1]
    for i, n in enumerate(values[:-1]):
        address += n * 256 ** (3 - i)
    return IPv4Address(address)


def literal_address(host: str) -> IPAddress | None:
    """The address a host names without asking DNS, or None for a host name."""
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if ":" in bare:
        try:
            return ip_address(bare)
        except ValueError:
            raise EgressRefused(f"'{host}' is not a valid IPv6 address") from None
    return numeric_ipv4(bare)


def is_localhost(host: str) -> bool:
    """`localhost` and every `*.localhost` name are loopback (RFC 6761), whatever DNS says."""
    name = host.lower().rstrip(".")
    return name == "localhost" or name.endswith(".localhost")


def refusal(address: IPAddress, allow: Iterable[IPNetwork]) -> str | None:
    """Why `address` may not be reached, or None when it may."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    allow = tuple(allow)
    if any(address in network for network in allow):
        return None
    for network, why in BLOCKED:
        if address in network:
            return f"{why} ({network})"
    if isinstance(address, IPv6Address):
        embedded: IPv4Address | None = None
        if address in NAT64:
            embedded = IPv4Address(int(address) & 0xFFFFFFFF)
        elif address in SIX_TO_FOUR:
            embedded = address.sixtofour
        if embedded is not None:
            inner = refusal(embedded, allow)
            if inner is not None:
                return f"carries {embedded}, {inner}"
    return None


def connectable(address: IPAddress) -> IPAddress:
    """The address to connect to: an IPv4-mapped IPv6 address as the IPv4 address it is."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


async def system_resolver(host: str, port: int) -> list[IPAddress]:
    """The operating system's answer for `host` (TCP), in its order, without duplicates."""
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(
            host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except (socket.gaierror, UnicodeError) as exc:
        raise Unresolved(f"cannot resolve '{host}': {exc}") from None
    found: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return found


# The policy ------------------------------------------------------------------------------


@dataclass
class EgressPolicy:
    """Which addresses webhooks may reach, and how host names become addresses."""

    allow: tuple[IPNetwork, ...] = ()
    resolver: Resolver = system_resolver
    resolve_timeout_s: float = 5.0

    def literal_refusal(self, host: str) -> str | None:
        """The refusal of a host that names its address itself (a number, an IP literal,
        localhost), without asking DNS; None for a name DNS must answer, or when allowed."""
        try:
            if is_localhost(host):
                return self._judge(host, list(LOOPBACK), named=True)
            literal = literal_address(host)
        except EgressRefused as exc:
            return str(exc)
        return None if literal is None else self._judge(host, [literal], named=False)

    async def addresses(self, host: str, port: int) -> list[IPAddress]:
        """Every address of `host`, each checked: the ones to connect to, in order.
        EgressRefused if any of them is not allowed; Unresolved if there are none."""
        candidates: list[IPAddress]
        if is_localhost(host):
            candidates, named = list(LOOPBACK), True
        else:
            literal = literal_address(host)
            if literal is not None:
                candidates, named = [literal], False
            else:
                if not _HOSTNAME.match(host.lower()):
                    raise EgressRefused(f"'{host}' is not a valid host name")
                try:
                    async with asyncio.timeout(self.resolve_timeout_s):
                        candidates = await self.resolver(host, port)
                except TimeoutError:
                    raise Unresolved(
                        f"no DNS answer for '{host}' within {self.resolve_timeout_s:g} s"
                    ) from None
                named = True
        if not candidates:
            raise Unresolved(f"'{host}' has no address")
        reason = self._judge(host, candidates, named=named)
        if reason is not None:
            raise EgressRefused(reason)
        unique: list[IPAddress] = []
        for address in map(connectable, candidates):
            if address not in unique:
                unique.append(address)
        return unique

    def _judge(self, host: str, candidates: list[IPAddress], *, named: bool) -> str | None:
        for address in candidates:
            why = refusal(address, self.allow)
            if why is not None:
                # A name's answer is not echoed to the caller (no internal DNS oracle);
                # an address the caller wrote is.
                where = f"'{host}' resolves to an address that is" if named else f"{address} is"
                return (
                    f"{where} {why}; webhooks may not target it "
                    "(DISPATCH_WEBHOOK_ALLOW_NETWORKS opens named ranges)"
                )
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, but every TCP connection goes to a checked address."""

    def __init__(
        self, policy: EgressPolicy, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.policy = policy
        self.inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self.policy.addresses(host, port)
        except Unresolved as exc:
            raise httpcore.ConnectError(str(exc)) from exc
        failure: Exception | None = None
        for address in addresses[:MAX_ADDRESSES_TRIED]:
            try:
                return await self.inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("webhooks do not go to unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own HTTP transport over a pool whose connections pass `policy`.

    httpx does not take a network backend yet, so the pool it built is replaced by one
    that has ours (everything else — request and response mapping, errors — is httpx's).
    Environment proxies are not used: the guard must see the address it connects to.
    """

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        ssl_context: ssl.SSLContext | None = None,
        limits: httpx.Limits | None = None,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, inner),
        )
