"""Webhooks against server-side request forgery, and the answer kept of a delivery.

Registration refuses a URL whose host is or resolves to a loopback, link-local, private…
address (422 on `url`); delivery resolves again, checks every address and connects only
to a checked one, so DNS rebinding reaches nothing; a refused delivery is a failed attempt
with its reason. The session harness opens 127.0.0.0/8 (tests/harness.py) for its local
receivers; `strict` runs the service with the default: nothing opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from app.integrations.delivery import EXCERPT_BYTES
from app.integrations.egress import system_resolver
from tests.conftest import PG_URL
from tests.harness import Harness, fresh_database, start_harness
from tests.receiver import Receiver
from tests.test_egress import FakeResolver
from tests.test_errors import assert_error
from tests.test_webhooks import deliveries, subscribe

pytestmark = pytest.mark.usefixtures("backend")


@pytest.fixture(scope="module")
async def strict(backend: str, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Harness]:
    """The service as shipped: DISPATCH_WEBHOOK_ALLOW_NETWORKS empty."""
    async with fresh_database(backend, PG_URL, tmp_path_factory.mktemp("strict")) as url:
        async with start_harness(url, webhook_allow_networks="") as running:
            assert running.ctx.webhooks.egress.allow == ()
            yield running


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    running = Receiver()
    await running.start()
    yield running
    await running.stop()


@contextlib.contextmanager
def dns(harness: Harness, answers: dict[str, list[list[str]]]) -> Iterator[FakeResolver]:
    """The service's resolver answers these names (in turn, the last answer repeating)."""
    egress = harness.ctx.webhooks.egress
    egress.resolver = FakeResolver(answers)
    try:
        yield egress.resolver
    finally:
        egress.resolver = system_resolver


async def first_attempt(harness: Harness, subscription_id: str) -> dict[str, Any]:
    """The subscription's delivery once its first attempt is recorded. (Its `attempts`
    count, not the attempt log: the listing reads the delivery row before the attempts,
    and an attempt committed between the two reads would come with a stale status.)"""
    async with asyncio.timeout(10):
        while True:
            rows = await deliveries(harness, subscription_id)
            if rows and rows[0]["attempts"] >= 1:
                return rows[0]
            await asyncio.sleep(0.02)


async def taken(harness: Harness, url: str) -> None:
    """Registration accepts `url`; the subscription is deleted at once, so nothing is ever
    sent to it (these addresses are not ones a test may reach)."""
    body = {"url": url, "event_types": ["incident.closed"]}
    response = await harness.post("/api/v1/webhooks", body)
    assert response.status_code == 201, response.text
    deleted = await harness.client.delete(
        f"/api/v1/webhooks/{response.json()['id']}", headers=await harness.headers()
    )
    assert deleted.status_code == 204


REFUSED_URLS = [
    "http://127.0.0.1/hooks",
    "http://2130706433/",
    "http://0x7f000001/",
    "http://127.1/",
    "http://0177.0.0.1/",
    "http://017700000001/",
    "http://0x7f.1/",
    "http://127.0.0.1./",
    "http://[::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:7f00:1]/",
    "http://localhost:8080/hooks",
    "http://LocalHost./",
    "http://cad.localhost/",
    "http://0.0.0.0/",
    "http://0/",
    "http://[::]/",
    "http://169.254.169.254/latest/meta-data/",
    "http://0xa9fea9fe/",
    "http://[::ffff:169.254.169.254]/",
    "http://[64:ff9b::a9fe:a9fe]/",
    "http://[fe80::1]/",
    "https://10.0.0.5/hooks",
    "https://172.16.0.1/",
    "https://172.31.255.254/",
    "https://192.168.1.10/",
    "https://100.64.0.1/",
    "https://[fc00::1]/",
    "https://[fd12:3456::1]/",
    "http://224.0.0.1/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://[2002:7f00:1::1]/",
]


@pytest.mark.parametrize("url", REFUSED_URLS)
async def test_internal_targets_are_refused_at_registration(strict: Harness, url: str) -> None:
    body = {"url": url, "event_types": ["incident.created"]}
    error = assert_error(await strict.post("/api/v1/webhooks", body), 422, "validation_error")
    assert error["message"].startswith("url:"), error
    assert error["details"][0]["field"] == "url"


async def test_a_name_that_resolves_inside_is_refused_at_registration(strict: Harness) -> None:
    answers = {
        "cad.example": [["10.20.0.7"]],
        "metadata.example": [["169.254.169.254"]],
        "mixed.example": [["93.184.216.34", "127.0.0.1"]],
        "public.example": [["93.184.216.34"]],
    }
    with dns(strict, answers) as resolver:
        for name in ("cad.example", "metadata.example", "mixed.example"):
            body = {"url": f"https://{name}/hooks", "event_types": ["incident.created"]}
            error = assert_error(
                await strict.post("/api/v1/webhooks", body), 422, "validation_error"
            )
            assert error["message"].startswith("url:") and name in error["message"], error
        await taken(strict, "https://public.example/hooks")
        # A name that does not resolve yet is taken: each delivery resolves and checks.
        await taken(strict, "https://later.example/hooks")
    assert resolver.asked == [
        "cad.example",
        "metadata.example",
        "mixed.example",
        "public.example",
        "later.example",
    ]


async def test_public_addresses_are_still_taken(strict: Harness) -> None:
    for url in ("https://93.184.216.34/hooks", "http://[2606:4700:4700::1111]:8443/x"):
        await taken(strict, url)


async def test_dns_rebinding_after_registration_is_refused_at_delivery(
    strict: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    """Public when registered, loopback when delivered: nothing reaches the receiver."""
    station = await strict.make_station(area)
    with dns(strict, {"cad.example": [["93.184.216.34"], ["127.0.0.1"]]}) as resolver:
        subscription = await subscribe(
            strict, f"http://cad.example:{receiver.port}/hooks", station["id"]
        )
        await strict.make_incident(area)
        delivery = await first_attempt(strict, subscription["id"])
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] is None and attempt["response_excerpt"] is None
    assert attempt["error"].startswith("refused:") and "loopback" in attempt["error"]
    assert delivery["status"] == "pending" and delivery["attempts"] == 1  # retried as usual
    assert resolver.asked == ["cad.example", "cad.example"]
    await asyncio.sleep(0.2)
    assert receiver.received == []


async def test_a_delivery_connects_to_the_address_it_checked(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    """cad.example resolves nowhere but in the service's checked answer: the receiver gets
    the delivery, addressed to the name."""
    station = await harness.make_station(area)
    with dns(harness, {"cad.example": [["127.0.0.1"]]}):
        subscription = await subscribe(
            harness, f"http://cad.example:{receiver.port}/hooks", station["id"]
        )
        await harness.make_incident(area)
        [received] = await receiver.wait_for(1)
        await harness.ctx.webhooks.drain()
    assert received.headers["host"] == f"cad.example:{receiver.port}"
    [delivery] = await deliveries(harness, subscription["id"])
    assert delivery["status"] == "delivered"


async def test_every_address_is_checked_at_delivery(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    """Allowed when registered; at delivery the answer adds the metadata address, and the
    allowed one alone is not enough."""
    station = await harness.make_station(area)
    answers = {"cad.example": [["127.0.0.1"], ["127.0.0.1", "169.254.169.254"]]}
    with dns(harness, answers):
        subscription = await subscribe(
            harness, f"http://cad.example:{receiver.port}/hooks", station["id"]
        )
        await harness.make_incident(area)
        delivery = await first_attempt(harness, subscription["id"])
    [attempt] = delivery["attempt_log"]
    assert attempt["error"].startswith("refused:") and "link-local" in attempt["error"]
    await asyncio.sleep(0.2)
    assert receiver.received == []


async def test_a_stored_target_now_refused_is_a_failed_attempt_never_a_request(
    harness: Harness, area: tuple[float, float], receiver: Receiver
) -> None:
    """A subscription taken under an older allow list (or before this guard) whose address
    is refused today: each attempt fails with the reason, and the receiver sees nothing."""
    station = await harness.make_station(area)
    subscription = await subscribe(harness, receiver.url, station["id"])
    egress = harness.ctx.webhooks.egress
    opened, egress.allow = egress.allow, ()
    try:
        await harness.make_incident(area)
        delivery = await first_attempt(harness, subscription["id"])
    finally:
        egress.allow = opened
    [attempt] = delivery["attempt_log"]
    assert attempt["status_code"] is None
    assert attempt["error"] == (
        "refused: 127.0.0.1 is loopback (127.0.0.0/8); webhooks may not target it "
        "(DISPATCH_WEBHOOK_ALLOW_NETWORKS opens named ranges)"
    )
    assert receiver.received == []


# The answer kept of a delivery -------------------------------------------------------------


class StreamingReceiver:
    """Answers every POST 200 with a `body_size` body that starts with `prefix`, written in
    64 KiB chunks as the client reads them; or, with `hang`, sends the prefix alone and
    keeps the connection open without ending the answer. Counts the bytes sent."""

    def __init__(self, body_size: int, prefix: bytes = b"", hang: bool = False) -> None:
        self.body_size = max(body_size, len(prefix))
        self.prefix = prefix
        self.hang = hang
        self.requests = 0
        self.sent = 0
        self.closed_early = asyncio.Event()
        self.port = 0
        self._server: asyncio.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            await reader.readexactly(length)
            self.requests += 1
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/plain; charset=utf-8\r\n"
                + f"content-length: {self.body_size}\r\n\r\n".encode()
            )
            body = self.prefix
            if not self.hang:
                body += b"z" * (self.body_size - len(self.prefix))
            for start in range(0, len(body), 65_536):
                writer.write(body[start : start + 65_536])
                await writer.drain()
                self.sent += len(body[start : start + 65_536])
            if self.hang:
                await reader.read()  # until the client hangs up
                self.closed_early.set()
        except (ConnectionError, asyncio.IncompleteReadError):
            self.closed_early.set()
        finally:
            writer.close()

    async def __aenter__(self) -> StreamingReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5):
                await self._server.wait_closed()


async def test_a_50_mib_answer_is_not_read_past_the_excerpt(
    harness: Harness, area: tuple[float, float]
) -> None:
    size = 50 * 1024 * 1024
    async with StreamingReceiver(size, prefix=b"accepted ") as big:
        station = await harness.make_station(area)
        subscription = await subscribe(harness, big.url, station["id"])
        await harness.make_incident(area)
        delivery = await first_attempt(harness, subscription["id"])
        async with asyncio.timeout(10):
            await big.closed_early.wait()  # the service hung up mid-answer
    [attempt] = delivery["attempt_log"]
    assert delivery["status"] == "delivered" and attempt["status_code"] == 200, attempt
    excerpt = attempt["response_excerpt"]
    assert excerpt.startswith("accepted zzz") and len(excerpt.encode()) == EXCERPT_BYTES
    # Whatever the sockets' buffers took, far from the whole answer was sent.
    assert big.requests == 1 and big.sent < size // 2


async def test_the_excerpt_is_read_while_the_answer_streams_and_cut_on_a_character(
    harness: Harness, area: tuple[float, float]
) -> None:
    """The receiver sends its status and 3 KiB, then never finishes: the delivery is
    recorded at once, with ≤ 1 KiB of whole UTF-8 characters (not after a read timeout)."""
    prefix = b"x" + "é".encode() * 1500
    async with StreamingReceiver(1024 * 1024, prefix=prefix, hang=True) as slow:
        station = await harness.make_station(area)
        subscription = await subscribe(harness, slow.url, station["id"])
        await harness.make_incident(area)
        async with asyncio.timeout(5):  # the request timeout is 10 s
            delivery = await first_attempt(harness, subscription["id"])
    [attempt] = delivery["attempt_log"]
    assert delivery["status"] == "delivered" and attempt["status_code"] == 200
    assert attempt["response_excerpt"] == "x" + "é" * 511  # 1023 bytes: the next é is cut
