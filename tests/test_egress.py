"""The webhook egress guard without a database: addresses, numbers, DNS, TLS, settings.

Every connection made here goes to 127.0.0.1 or 127.0.0.2 (servers this file starts);
the addresses that are refused are never connected to, which the tests check.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from ipaddress import IPv4Address, ip_address, ip_network
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.integrations.delivery import EXCERPT_BYTES, excerpt_text
from app.integrations.egress import (
    BLOCKED,
    EgressPolicy,
    EgressRefused,
    GuardedTransport,
    IPAddress,
    Unresolved,
    literal_address,
    numeric_ipv4,
    parse_networks,
    refusal,
)
from app.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LOOP = ip_network("127.0.0.0/8")


class FakeResolver:
    """DNS for tests: each name answers its queued answers in turn, the last one forever."""

    def __init__(self, answers: dict[str, list[list[str]]]) -> None:
        self.answers = {name: [list(a) for a in queue] for name, queue in answers.items()}
        self.asked: list[str] = []

    async def __call__(self, host: str, port: int) -> list[IPAddress]:
        self.asked.append(host)
        queue = self.answers.get(host.rstrip("."))
        if not queue:
            raise Unresolved(f"cannot resolve '{host}'")
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        return [ip_address(a) for a in answer]


# The brief's numeric forms, and the ranges ------------------------------------------------


@pytest.mark.parametrize(
    "host,address",
    [
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0X7F000001", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("127.0.0.1.", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa9fea9fe", "169.254.169.254"),
        ("2852039166", "169.254.169.254"),
        ("10.1", "10.0.0.1"),
        ("[::1]", "::1"),
        ("::ffff:127.0.0.1", "::ffff:127.0.0.1"),
    ],
)
def test_numeric_hosts_name_the_address_resolvers_would(host: str, address: str) -> None:
    assert literal_address(host) == ip_address(address)
    assert EgressPolicy().literal_refusal(host) is not None


@pytest.mark.parametrize(
    "host", ["1.2.3.08", "1.2.3.4.5", "256.1.1.1", "1.2.3.256", "1..2", "0x100000000", "09"]
)
def test_a_host_ending_in_a_number_that_is_no_address_is_refused(host: str) -> None:
    with pytest.raises(EgressRefused, match="neither a host name nor a valid IPv4"):
        literal_address(host)


@pytest.mark.parametrize(
    "host", ["example.com", "cad.police.example", "1.2.3.example", "0x7f.example", "a1", "0x1g"]
)
def test_host_names_are_left_to_dns(host: str) -> None:
    assert literal_address(host) is None
    assert EgressPolicy().literal_refusal(host) is None


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "169.254.169.254",
        "169.254.0.1",
        "0.0.0.0",
        "10.0.0.1",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "100.64.0.1",
        "100.127.255.255",
        "224.0.0.1",
        "239.255.255.250",
        "255.255.255.255",
        "::",
        "::1",
        "fe80::1",
        "febf::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "::ffff:10.0.0.1",
        "::ffff:0.0.0.0",
        "64:ff9b::a9fe:a9fe",
        "64:ff9b::7f00:1",
        "2002:7f00:1::1",
        "2002:a00:1::",
        "::127.0.0.1",
    ],
)
def test_internal_addresses_are_refused(address: str) -> None:
    why = refusal(ip_address(address), ())
    assert why is not None, address


@pytest.mark.parametrize(
    "address", ["93.184.216.34", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"]
)
def test_public_addresses_are_allowed(address: str) -> None:
    assert refusal(ip_address(address), ()) is None


def test_named_networks_open_their_range_and_nothing_else() -> None:
    allow = tuple(parse_networks("127.0.0.0/8, 10.20.0.0/16,fd00:1::/32"))
    assert refusal(ip_address("127.0.0.1"), allow) is None
    assert refusal(ip_address("::ffff:127.0.0.1"), allow) is None
    assert refusal(ip_address("10.20.3.4"), allow) is None
    assert refusal(ip_address("fd00:1::5"), allow) is None
    assert refusal(ip_address("10.21.0.1"), allow) is not None
    assert refusal(ip_address("::1"), allow) is not None  # IPv6 loopback was not named
    assert refusal(ip_address("169.254.169.254"), allow) is not None


ipv4_ints = st.integers(min_value=0, max_value=2**32 - 1)


def blocked_ipv4() -> st.SearchStrategy[IPv4Address]:
    networks = [n for n, _ in BLOCKED if n.version == 4]
    return st.sampled_from(networks).flatmap(
        lambda n: st.integers(int(n.network_address), int(n.broadcast_address)).map(IPv4Address)
    )


@st.composite
def numeric_form(draw: st.DrawFn, address: int) -> str:
    """`address` written as one, two, three or four numbers, each decimal, octal or hex."""
    count = draw(st.integers(1, 4))
    octets = address.to_bytes(4, "big")
    parts = list(octets[: count - 1]) + [int.from_bytes(octets[count - 1 :], "big")]

    def write(n: int) -> str:
        style = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
        if style == "oct":
            return "0" + format(n, "o")
        if style == "hex":
            return "0x" + format(n, "x")
        if style == "HEX":
            return "0X" + format(n, "X")
        return str(n)

    return ".".join(write(p) for p in parts)


@given(st.data())
def test_every_numeric_form_of_an_internal_address_is_refused(data: st.DataObject) -> None:
    address = data.draw(blocked_ipv4())
    host = data.draw(numeric_form(int(address)))
    assert numeric_ipv4(host) == address
    # The operating system's parser reads the same address: what is checked is what the
    # resolver would have connected to.
    assert socket.inet_aton(host) == address.packed
    why = EgressPolicy().literal_refusal(host)
    assert why is not None and str(address) in why


@given(ipv4_ints.flatmap(lambda n: st.tuples(st.just(n), numeric_form(n))))
def test_numeric_forms_agree_with_inet_aton(case: tuple[int, str]) -> None:
    number, host = case
    assert numeric_ipv4(host) == IPv4Address(number) == IPv4Address(socket.inet_aton(host))


@given(blocked_ipv4())
def test_ipv4_mapped_ipv6_forms_are_judged_as_ipv4(address: IPv4Address) -> None:
    n = int(address)
    for host in (f"[::ffff:{address}]", f"[::ffff:{n >> 16:x}:{n & 0xFFFF:x}]"):
        why = EgressPolicy().literal_refusal(host)
        assert why is not None and str(refusal(address, ())) in why, host


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST", "localhost.", "api.localhost", "a.b.LocalHost."]
)
async def test_localhost_names_are_loopback_without_asking_dns(host: str) -> None:
    resolver = FakeResolver({})
    policy = EgressPolicy(resolver=resolver)
    assert "loopback" in (policy.literal_refusal(host) or "")
    with pytest.raises(EgressRefused, match="loopback"):
        await policy.addresses(host, 80)
    assert resolver.asked == []


async def test_every_address_of_a_name_is_checked() -> None:
    resolver = FakeResolver(
        {
            "public.example": [["93.184.216.34", "2606:2800:220:1::1"]],
            "mixed.example": [["93.184.216.34", "10.0.0.7"]],
            "metadata.example": [["169.254.169.254"]],
        }
    )
    policy = EgressPolicy(resolver=resolver)
    assert await policy.addresses("public.example", 443) == [
        ip_address("93.184.216.34"),
        ip_address("2606:2800:220:1::1"),
    ]
    with pytest.raises(EgressRefused, match="private") as refused:
        await policy.addresses("mixed.example", 443)
    assert "10.0.0.7" not in str(refused.value)  # a name's answer is not echoed back
    with pytest.raises(EgressRefused, match="link-local"):
        await policy.addresses("metadata.example", 443)
    with pytest.raises(Unresolved):
        await policy.addresses("nowhere.example", 443)


async def test_a_resolver_that_does_not_answer_in_time_is_unresolved() -> None:
    async def slow(host: str, port: int) -> list[IPAddress]:
        await asyncio.sleep(10)
        return []

    policy = EgressPolicy(resolver=slow, resolve_timeout_s=0.05)
    with pytest.raises(Unresolved, match="within"):
        await policy.addresses("slow.example", 443)


# Connecting: to the checked address, with the real name for Host, SNI and the cert -------


@contextlib.asynccontextmanager
async def http_server(
    host: str = "127.0.0.1", ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[dict]:
    """A minimal HTTP/1.1 server; yields {port, connections, hosts, sni}."""
    seen: dict = {"connections": 0, "hosts": [], "sni": []}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("host:"):
                    seen["hosts"].append(line.split(":", 1)[1].strip())
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    def record_sni(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        seen["sni"].append(name)

    if ssl_context is not None:
        ssl_context.sni_callback = record_sni
    server = await asyncio.start_server(handle, host, 0, ssl=ssl_context)
    seen["port"] = server.sockets[0].getsockname()[1]
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def certificates(tmp: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context with a certificate for `name`, client context trusting its CA)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (tmp / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp / "leaf.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp / "leaf.pem", tmp / "leaf.key")
    client = ssl.create_default_context(cadata=ca.public_bytes(serialization.Encoding.PEM).decode())
    return server, client


async def test_https_goes_to_the_checked_address_with_the_real_name_for_sni_and_cert(
    tmp_path: Path,
) -> None:
    server_tls, client_tls = certificates(tmp_path, "cad.example")
    resolver = FakeResolver({"cad.example": [["127.0.0.1"]], "other.example": [["127.0.0.1"]]})
    policy = EgressPolicy(allow=(LOOP,), resolver=resolver)
    async with http_server(ssl_context=server_tls) as seen:
        port = seen["port"]
        transport = GuardedTransport(policy, ssl_context=client_tls)
        async with httpx.AsyncClient(transport=transport) as client:
            # No resolver on this machine knows cad.example: only the checked address
            # could have been connected to.
            response = await client.get(f"https://cad.example:{port}/hook")
            assert response.status_code == 200 and response.text == "ok"
            assert seen["sni"] == ["cad.example"]
            assert seen["hosts"] == [f"cad.example:{port}"]
            # The certificate is checked against the name in the URL, not the address.
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await client.get(f"https://other.example:{port}/hook")
            assert resolver.asked == ["cad.example", "other.example"]


async def test_dns_rebinding_between_check_and_connection_reaches_nothing() -> None:
    """The name answers the allowed address first, then an address that is refused, where
    a server listens: the connection is refused and that server never sees one."""
    async with http_server("127.0.0.1") as allowed, http_server("127.0.0.2") as target:
        assert allowed["port"] != 0
        resolver = FakeResolver(
            {"rebind.example": [["127.0.0.1"], ["127.0.0.2"]]},
        )
        policy = EgressPolicy(allow=(ip_network("127.0.0.1/32"),), resolver=resolver)
        assert await policy.addresses("rebind.example", target["port"]) == [ip_address("127.0.0.1")]
        async with httpx.AsyncClient(transport=GuardedTransport(policy)) as client:
            with pytest.raises(EgressRefused, match="loopback"):
                await client.post(f"http://rebind.example:{target['port']}/hook", content=b"{}")
            with pytest.raises(EgressRefused, match="127.0.0.2 is loopback"):
                await client.post(f"http://127.0.0.2:{target['port']}/hook", content=b"{}")
            with pytest.raises(EgressRefused, match="loopback"):
                await client.post(f"http://2130706434:{target['port']}/hook", content=b"{}")
        assert target["connections"] == 0


async def test_an_unresolvable_name_is_a_connect_error() -> None:
    policy = EgressPolicy(resolver=FakeResolver({}))
    async with httpx.AsyncClient(transport=GuardedTransport(policy)) as client:
        with pytest.raises(httpx.ConnectError, match="cannot resolve"):
            await client.post("http://gone.example/hook")


# Settings --------------------------------------------------------------------------------


def test_allow_networks_setting_parses_cidrs_and_defaults_to_none() -> None:
    assert Settings(_env_file=None).webhook_allow_networks == []
    settings = Settings(
        _env_file=None,
        webhook_allow_networks=" 10.20.0.0/16, fd00::/8 ,192.168.7.9",
    )
    assert settings.webhook_allow_networks == [
        ip_network("10.20.0.0/16"),
        ip_network("fd00::/8"),
        ip_network("192.168.7.9/32"),
    ]


@pytest.mark.parametrize("value", ["10.0.0.1/8", "10.0.0.0/33", "private", "10.0.0.0/8;"])
def test_a_bad_cidr_is_refused_with_its_name(value: str) -> None:
    with pytest.raises(ValidationError) as error:
        Settings(_env_file=None, webhook_allow_networks=value)
    assert "webhook_allow_networks" in str(error.value) and "CIDR" in str(error.value)


def test_the_replaced_setting_is_refused_with_a_pointer_to_the_new_one() -> None:
    with pytest.raises(ValidationError, match="DISPATCH_WEBHOOK_ALLOW_NETWORKS"):
        Settings(_env_file=None, allow_private_webhook_targets="true")


def test_a_bad_cidr_fails_startup_with_a_clear_message(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DISPATCH_ENV": "test",
        "DISPATCH_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'd.db'}",
        "DISPATCH_SECRET_KEY": "k" * 40,
        "DISPATCH_WEBHOOK_ALLOW_NETWORKS": "10.0.0.0/8,172.16.0.1/12",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app", "serve", "--port", "1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert "webhook_allow_networks" in done.stderr
    assert "'172.16.0.1/12' is not a network in CIDR form" in done.stderr


# The response excerpt ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "body,expected",
    [
        (b"status 503", "status 503"),
        (b"", ""),
        (b"x" + "é".encode() * 1000, "x" + "é" * 511),  # the 1024th byte starts an é
        ("é".encode() * 1000, "é" * 512),
        ("道".encode() * 1000, "道" * 341),
        (b"a\x00b\xffc", "a\ufffdb\ufffdc"),
        (b"z" * 5000, "z" * EXCERPT_BYTES),
    ],
)
def test_excerpt_is_short_utf8_in_whole_characters(body: bytes, expected: str) -> None:
    text = excerpt_text(body)
    assert text == expected
    assert len(text.encode()) <= EXCERPT_BYTES


def test_excerpt_of_another_charset_still_fits() -> None:
    text = excerpt_text("é".encode("latin-1") * 2000, "latin-1")
    assert set(text) == {"é"} and len(text.encode()) <= EXCERPT_BYTES
