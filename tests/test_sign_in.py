"""Signing in: throttling, client addresses behind proxies, lockout (CJIS AC-7), and the
cost of argon2 kept off the database and bounded."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher, extract_parameters
from sqlalchemy import select
from starlette.requests import Request

from app.auth import hashing, secrets
from app.auth.address import client_address, forwarded_client
from app.auth.hashing import HASHING
from app.auth.throttle import LoginThrottle
from app.models import User
from app.settings import Settings
from tests.harness import Harness, start_harness
from tests.test_errors import assert_error

TOKEN = "/api/v1/auth/token"
PASSWORD = "correct-horse-battery"


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests of counting and locking make many attempts one after another: hash with the
    cheapest argon2id (users created meanwhile too, and the dummy) so they take
    milliseconds each. The tests of what hashing costs use the real parameters."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(secrets, "_hasher", cheap)
    monkeypatch.setattr(secrets, "_DUMMY_HASH", cheap.hash("not-a-real-password"))


# Client address ---------------------------------------------------------------------


def _request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    return Request({"type": "http", "client": (peer, 5000), "headers": headers})


def _nets(*items: str) -> tuple[Any, ...]:
    settings = Settings(_env_file=None, secret_key="k" * 32, trusted_proxies=",".join(items))  # type: ignore[call-arg]
    return settings.trusted_proxy_networks


def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() -> None:
    assert client_address(_request("198.51.100.9", "203.0.113.1"), ()) == "198.51.100.9"
    assert client_address(_request("198.51.100.9", "203.0.113.1"), _nets("10.0.0.0/8")) == (
        "198.51.100.9"
    )


def test_the_client_is_the_right_most_untrusted_address() -> None:
    trusted = _nets("10.0.0.0/8", "192.0.2.1")
    # The client wrote a fake address first; the proxies appended what they saw.
    request = _request("10.0.0.2", "1.2.3.4, 203.0.113.7, 192.0.2.1")
    assert client_address(request, trusted) == "203.0.113.7"
    # Several headers read as one list, in order.
    assert client_address(_request("10.0.0.2", "1.2.3.4", "203.0.113.8"), trusted) == (
        "203.0.113.8"
    )
    # All trusted: the left-most (an internal host calling through the proxies).
    assert client_address(_request("10.0.0.2", "10.1.1.1, 192.0.2.1"), trusted) == "10.1.1.1"
    # No header: the proxy itself.
    assert client_address(_request("10.0.0.2"), trusted) == "10.0.0.2"


def test_forwarded_addresses_are_normalised() -> None:
    trusted = _nets("10.0.0.0/8")
    assert forwarded_client("10.0.0.2", ["[2001:db8:0::1]:443"], trusted) == "2001:db8::1"
    assert forwarded_client("10.0.0.2", ["203.0.113.7:5123"], trusted) == "203.0.113.7"
    assert forwarded_client("10.0.0.2", ["::ffff:203.0.113.7"], trusted) == "203.0.113.7"
    assert forwarded_client("10.0.0.2", ["unknown"], trusted) == "unknown"
    assert forwarded_client("10.0.0.2", [" , "], trusted) == "10.0.0.2"


# Throttle ---------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _fail(throttle: LoginThrottle, address: str, username: str) -> None:
    throttle.started(address, username)
    throttle.finished(address, username, "failed")


def test_throttle_per_username_across_addresses() -> None:
    clock = FakeTime()
    throttle = LoginThrottle(per_username=3, per_address=100, window_s=60, now=clock)
    for n in range(3):
        assert throttle.retry_after(f"203.0.113.{n}", "alice") == 0
        _fail(throttle, f"203.0.113.{n}", "alice")
    assert throttle.retry_after("198.51.100.1", "alice") == 60  # any address
    assert throttle.retry_after("198.51.100.1", "ALICE") == 60  # any spelling
    assert throttle.retry_after("203.0.113.0", "bob") == 0  # other names are not held
    clock.now += 30
    assert throttle.retry_after("198.51.100.1", "alice") == 30
    clock.now += 30
    assert throttle.retry_after("198.51.100.1", "alice") == 0


def test_throttle_per_address_across_usernames() -> None:
    clock = FakeTime()
    throttle = LoginThrottle(per_username=100, per_address=3, window_s=60, now=clock)
    for n in range(3):
        _fail(throttle, "203.0.113.9", f"user{n}")
    assert throttle.retry_after("203.0.113.9", "someone-else") == 60
    assert throttle.retry_after("203.0.113.10", "someone-else") == 0
    # An IPv6 client is one /64: rotating the interface id does not help.
    for n in range(3):
        _fail(throttle, f"2001:db8:1:2::{n + 1}", f"user{n}")
    assert throttle.retry_after("2001:db8:1:2:ffff::9", "x") == 60
    assert throttle.retry_after("2001:db8:1:3::1", "x") == 0


def test_attempts_in_progress_count_so_a_burst_cannot_slip_past() -> None:
    throttle = LoginThrottle(per_username=100, per_address=3, window_s=60, now=FakeTime())
    for n in range(3):
        assert throttle.retry_after("203.0.113.9", f"user{n}") == 0
        throttle.started("203.0.113.9", f"user{n}")
    assert throttle.retry_after("203.0.113.9", "user9") == 1
    throttle.finished("203.0.113.9", "user0", "abandoned")  # not counted as a failure
    assert throttle.retry_after("203.0.113.9", "user9") == 0


def test_success_clears_the_username_but_not_the_address() -> None:
    throttle = LoginThrottle(per_username=3, per_address=4, window_s=60, now=FakeTime())
    for _ in range(2):
        _fail(throttle, "203.0.113.9", "alice")
    for _ in range(2):
        _fail(throttle, "203.0.113.9", "mallory")
    throttle.started("203.0.113.9", "alice")
    throttle.finished("203.0.113.9", "alice", "succeeded")
    assert throttle.by_username.retry_after("alice") == 0
    assert throttle.retry_after("203.0.113.9", "anyone") == 60  # 4 failures from there


# Over HTTP ----------------------------------------------------------------------------


async def _sign_in(h: Harness, username: str, password: str, **kw: Any) -> httpx.Response:
    return await h.client.post(TOKEN, data={"username": username, "password": password}, **kw)


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_429_carries_retry_after_and_forged_forwarded_for_does_not_help(
    harness: Harness,
) -> None:
    """No trusted proxies: X-Forwarded-For from the client is not believed (by uvicorn or
    the app), so failures under made-up addresses all count against 127.0.0.1."""
    limit = harness.ctx.settings.login_failures_per_address
    for n in range(limit):
        response = await _sign_in(
            harness, f"nobody-{n}", "wrong-pass", headers={"X-Forwarded-For": f"203.0.113.{n}"}
        )
        assert_error(response, 401, "invalid_credentials")
    response = await _sign_in(
        harness, "nobody-new", "wrong-pass", headers={"X-Forwarded-For": "198.51.100.1"}
    )
    error = assert_error(response, 429, "rate_limited")
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= harness.ctx.settings.login_throttle_window_s
    assert error["details"] == {"retry_after_s": retry_after}


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_behind_a_trusted_proxy_each_client_is_throttled_on_its_own(
    own_database_url: str,
) -> None:
    async with start_harness(own_database_url, trusted_proxies="127.0.0.1") as h:
        limit = h.ctx.settings.login_failures_per_address
        spoofed = {"X-Forwarded-For": "1.1.1.1, 203.0.113.5"}  # client-written part ignored
        for n in range(limit):
            response = await _sign_in(h, f"nobody-{n}", "wrong-pass", headers=spoofed)
            assert response.status_code == 401
        blocked = await _sign_in(h, "nobody-x", "wrong-pass", headers=spoofed)
        assert_error(blocked, 429, "rate_limited")
        assert "203.0.113.5" in {k for k in h.ctx.login_throttle.by_address._buckets}
        other = await _sign_in(
            h, "nobody-x", "wrong-pass", headers={"X-Forwarded-For": "203.0.113.6"}
        )
        assert_error(other, 401, "invalid_credentials")


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_one_username_is_throttled_across_addresses(own_database_url: str) -> None:
    async with start_harness(own_database_url, trusted_proxies="127.0.0.1") as h:
        username = await h.user("operator")
        limit = h.ctx.settings.login_failures_per_username
        for n in range(limit):
            forwarded = {"X-Forwarded-For": f"203.0.113.{n}"}
            assert (await _sign_in(h, username, "wrong", headers=forwarded)).status_code == 401
        response = await _sign_in(
            h, username, PASSWORD, headers={"X-Forwarded-For": "198.51.100.77"}
        )
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1


# Lockout ------------------------------------------------------------------------------


async def _user_id(h: Harness, username: str) -> str:
    async with h.ctx.db.transaction(readonly=True) as session:
        return str(await session.scalar(select(User.id).where(User.username == username)))


async def _fail_times(h: Harness, username: str, n: int) -> list[httpx.Response]:
    return [await _sign_in(h, username, "wrong-password") for _ in range(n)]


def _same_answer(a: httpx.Response, b: httpx.Response) -> None:
    assert (a.status_code, a.json()) == (b.status_code, b.json())
    for header in ("www-authenticate", "retry-after", "content-type", "cache-control"):
        assert a.headers.get(header) == b.headers.get(header), header


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_five_failures_lock_the_account_like_a_wrong_password(harness: Harness) -> None:
    settings = harness.ctx.settings
    assert (settings.lockout_threshold, settings.lockout_window_s) == (5, 900)
    username = await harness.user("operator")
    answers = await _fail_times(harness, username, 5)
    for response in answers:
        assert_error(response, 401, "invalid_credentials")

    # The right password now gets exactly what a wrong one, or an unknown name, gets.
    locked = await _sign_in(harness, username, PASSWORD)
    _same_answer(locked, answers[0])
    _same_answer(locked, await _sign_in(harness, f"ghost-{uuid.uuid4().hex[:6]}", PASSWORD))

    # Admins see it.
    user_id = await _user_id(harness, username)
    shown = (await harness.get(f"/api/v1/users/{user_id}")).json()
    expected = harness.now() + dt.timedelta(seconds=settings.lockout_duration_s)
    assert shown["locked_until"] == expected.isoformat().replace("+00:00", "Z")
    assert shown["failed_logins"] == 0  # the count starts again after the lock
    listed = (await harness.get("/api/v1/users?locked=true&limit=500")).json()["items"]
    assert user_id in {item["id"] for item in listed}
    unlocked = (await harness.get("/api/v1/users?locked=false&limit=500")).json()["items"]
    assert user_id not in {item["id"] for item in unlocked}

    # It lifts by itself, and the right password works again.
    harness.clock.advance(settings.lockout_duration_s + 1)
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200
    assert (await harness.get(f"/api/v1/users/{user_id}")).json()["locked_until"] is None


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_attempts_during_a_lock_do_not_extend_it(harness: Harness) -> None:
    username = await harness.user("operator")
    await _fail_times(harness, username, 5)
    duration = harness.ctx.settings.lockout_duration_s
    harness.clock.advance(duration - 60)
    harness.ctx.login_throttle.reset()  # the in-memory throttle is another test's subject
    for response in await _fail_times(harness, username, 5):
        assert response.status_code == 401
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 401
    harness.clock.advance(61)
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_only_failures_within_the_window_count(harness: Harness) -> None:
    username = await harness.user("operator")
    await _fail_times(harness, username, 4)
    harness.clock.advance(harness.ctx.settings.lockout_window_s + 1)
    await _fail_times(harness, username, 4)  # 8 failures, never 5 within 15 minutes
    user_id = await _user_id(harness, username)
    assert (await harness.get(f"/api/v1/users/{user_id}")).json()["failed_logins"] == 4
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_a_success_starts_the_count_again(harness: Harness) -> None:
    username = await harness.user("operator")
    await _fail_times(harness, username, 4)
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200
    await _fail_times(harness, username, 4)
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_an_admin_can_unlock_at_once(harness: Harness) -> None:
    username = await harness.user("operator")
    user_id = await _user_id(harness, username)
    await _fail_times(harness, username, 5)
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 401

    refused = await harness.post(f"/api/v1/users/{user_id}/unlock", role="supervisor")
    assert_error(refused, 403, "forbidden")
    response = await harness.post(f"/api/v1/users/{user_id}/unlock")
    assert response.status_code == 200, response.text
    assert response.json()["locked_until"] is None and response.json()["failed_logins"] == 0
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200
    again = await harness.post(f"/api/v1/users/{user_id}/unlock")  # nothing to lift: fine
    assert again.status_code == 200
    missing = await harness.post("/api/v1/users/usr_missing/unlock")
    assert_error(missing, 404, "not_found")


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_unlocking_also_clears_the_usernames_throttle(harness: Harness) -> None:
    username = await harness.user("operator")
    limit = harness.ctx.settings.login_failures_per_username
    await _fail_times(harness, username, limit)
    assert_error(await _sign_in(harness, username, PASSWORD), 429, "rate_limited")
    user_id = await _user_id(harness, username)
    assert (await harness.post(f"/api/v1/users/{user_id}/unlock")).status_code == 200
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 200


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_a_lock_survives_a_restart(own_database_url: str) -> None:
    async with start_harness(own_database_url) as first:
        username = await first.user("operator")
        await _fail_times(first, username, 5)
    async with start_harness(own_database_url) as second:  # a new process: memory is empty
        assert (await _sign_in(second, username, PASSWORD)).status_code == 401
        user_id = await _user_id(second, username)
        assert (await second.get(f"/api/v1/users/{user_id}")).json()["locked_until"] is not None


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_concurrent_failures_lock_once_and_count_every_one(harness: Harness) -> None:
    username = await harness.user("operator")
    answers = await asyncio.gather(
        *(_sign_in(harness, username, "wrong-password") for _ in range(8))
    )
    assert {a.status_code for a in answers} == {401}
    assert (await _sign_in(harness, username, PASSWORD)).status_code == 401
    user_id = await _user_id(harness, username)
    assert (await harness.get(f"/api/v1/users/{user_id}")).json()["locked_until"] is not None


# The cost of hashing ------------------------------------------------------------------


async def _fresh_get(base_url: str, path: str, headers: dict[str, str]) -> httpx.Response:
    """A GET on a connection of its own: the shared client's idle keep-alive connection may
    be closing (uvicorn drops them after 5 s) just as a busy test reuses it."""
    async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
        return await client.get(path, headers=headers)


@contextlib.contextmanager
def counted_verifications() -> Iterator[list[str | None]]:
    """Record the hash each argon2 verification ran against (None: the dummy)."""
    calls: list[str | None] = []
    real = secrets.verify_password

    def spy(password_hash: str | None, password: str) -> bool:
        calls.append(password_hash)
        return real(password_hash, password)

    secrets.verify_password = spy  # type: ignore[assignment]
    try:
        yield calls
    finally:
        secrets.verify_password = real  # type: ignore[assignment]


@pytest.mark.usefixtures("backend")
async def test_a_wrong_username_costs_one_hash_like_a_wrong_password(harness: Harness) -> None:
    username = await harness.user("operator")
    with counted_verifications() as calls:
        assert (await _sign_in(harness, "no-such-user-at-all", "whatever1")).status_code == 401
        assert (await _sign_in(harness, username, "whatever1")).status_code == 401
    assert len(calls) == 2
    assert calls[0] is None and calls[1] is not None
    # The dummy hash costs what a real one does: same algorithm and parameters.
    assert extract_parameters(secrets._DUMMY_HASH) == extract_parameters(calls[1])
    # A locked account still pays the full hash (its answer must not come back faster).
    await _fail_times(harness, username, 5)
    with counted_verifications() as calls:
        assert (await _sign_in(harness, username, PASSWORD)).status_code == 401
    assert len(calls) == 1


@pytest.mark.usefixtures("backend", "cheap_argon2")
async def test_every_attempt_takes_the_same_transactions(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Unknown name, wrong password, inactive or locked account: one read, then one short
    write, so how long the database part takes does not tell them apart either."""
    from sqlalchemy import update

    ctx = harness.ctx
    real_transaction = ctx.db.transaction
    shapes: list[tuple[bool, bool]] = []

    def tracked(*, readonly: bool = False, serial: bool = True) -> Any:
        # Only sign-in's own: background loops (audit sealing, timers) open theirs too.
        if sys._getframe(1).f_globals.get("__name__") == "app.auth.signin":
            shapes.append((readonly, serial))
        return real_transaction(readonly=readonly, serial=serial)

    locked = await harness.user("operator")
    await _fail_times(harness, locked, 5)
    inactive = await harness.user("operator")
    async with ctx.db.transaction() as session:
        await session.execute(update(User).where(User.username == inactive).values(active=False))
    wrong = await harness.user("operator")
    monkeypatch.setattr(ctx.db, "transaction", tracked)
    for username in ("no-such-user-x", wrong, inactive, locked):
        shapes.clear()
        assert (await _sign_in(harness, username, "wrong-password")).status_code == 401
        assert shapes == [(True, True), (False, False)], username


@pytest.mark.usefixtures("backend")
async def test_hashing_holds_no_connection_and_reads_go_on(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While every hashing thread is busy (held here) and more logins queue for one, no
    login holds a database transaction, and an authenticated read answers."""
    ctx = harness.ctx
    headers = await harness.headers("operator")
    real_username = await harness.user("operator")
    depth: dict[asyncio.Task[Any] | None, int] = {}
    seen_depths: list[int] = []
    real_transaction = ctx.db.transaction
    real_verify = HASHING.verify

    @contextlib.asynccontextmanager
    async def tracked(*args: Any, **kw: Any) -> AsyncIterator[Any]:
        task = asyncio.current_task()
        depth[task] = depth.get(task, 0) + 1
        try:
            async with real_transaction(*args, **kw) as session:
                yield session
        finally:
            depth[task] -= 1

    async def verify(password_hash: str | None, password: str) -> bool:
        seen_depths.append(depth.get(asyncio.current_task(), 0))
        return await real_verify(password_hash, password)

    release = threading.Event()
    real_check = secrets.verify_password

    def held(password_hash: str | None, password: str) -> bool:
        release.wait(30)
        return real_check(password_hash, password)

    monkeypatch.setattr(ctx.db, "transaction", tracked)
    monkeypatch.setattr(HASHING, "verify", verify)
    monkeypatch.setattr(secrets, "verify_password", held)
    n = HASHING.workers + 3
    names = [real_username] + [f"ghost-{i}" for i in range(n - 1)]
    logins = [asyncio.create_task(_sign_in(harness, name, "wrong-pass")) for name in names]
    try:
        async with asyncio.timeout(30):
            while HASHING.running < HASHING.workers or len(seen_depths) < n:
                await asyncio.sleep(0.01)
        assert seen_depths == [0] * n  # no login was inside a transaction when it hashed
        assert not ctx.db._writer.locked()
        read = await _fresh_get(harness.base_url, "/api/v1/incidents?limit=1", headers)
        assert read.status_code == 200
        assert not all(task.done() for task in logins)  # the read did not wait for them
    finally:
        release.set()
    answers = await asyncio.gather(*logins)
    assert {a.status_code for a in answers} == {401}


@pytest.mark.usefixtures("backend")
async def test_300_concurrent_bad_logins_are_bounded_and_reads_still_answer(
    own_database_url: str,
) -> None:
    """300 bad logins at once, each from its own address (behind a trusted proxy) so the
    throttle does not stop them first: they end 401 or 429, an authenticated read answers
    200 before they are all done, and never more than `workers` hashes ran at once."""
    async with start_harness(own_database_url, trusted_proxies="127.0.0.1") as h:
        headers = await h.headers("operator")
        victim = await h.user("operator")
        HASHING.peak = 0
        shed_before = HASHING.shed
        limits = httpx.Limits(max_connections=400, max_keepalive_connections=400)
        async with httpx.AsyncClient(base_url=h.base_url, limits=limits, timeout=120) as flood:

            async def bad_login(n: int) -> int:
                # A few at a real account (below its lockout), the rest at unknown names.
                username = victim if n < 3 else f"nobody-{n}"
                response = await flood.post(
                    TOKEN,
                    data={"username": username, "password": f"guess-{n}"},
                    headers={"X-Forwarded-For": f"10.{n // 250}.{n % 250}.1"},
                )
                return response.status_code

            logins = [asyncio.create_task(bad_login(n)) for n in range(300)]
            async with asyncio.timeout(60):
                while HASHING.running == 0:
                    await asyncio.sleep(0.005)
            read = await _fresh_get(h.base_url, "/api/v1/incidents?limit=1", headers)
            assert read.status_code == 200
            assert not all(task.done() for task in logins)
            codes = await asyncio.gather(*logins)
        assert set(codes) <= {401, 429} and 401 in codes
        assert 1 <= HASHING.peak <= HASHING.workers
        assert HASHING.workers == max(1, hashing.usable_cores() - 1)
        assert codes.count(429) == HASHING.shed - shed_before  # turned away, not queued
        assert HASHING.running == 0 and HASHING.admitted == 0
