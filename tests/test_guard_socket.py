"""The guard websocket protocol: auth, resume, bad frames, bad pings, replacement, limits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket

import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State
from websockets.uri import parse_uri

from app.clock import isoformat
from app.models import GuardPresence
from app.realtime import outbox
from app.realtime.frames import instruction_frame
from tests.harness import Harness, serve, settings_for, start_harness
from tests.phones import WAIT_S, Phone, guard_at, offset, phone_for
from tests.sockets import needs_proc_net_tcp, server_socket_open

pytestmark = pytest.mark.usefixtures("backend")


async def close_code(
    harness: Harness, headers: dict[str, str], first: str | None = None
) -> int | None:
    async with connect(f"{harness.ws_url}/ws/guard", additional_headers=headers) as ws:
        if first is not None:
            await ws.send(first)
        try:
            async with asyncio.timeout(5):
                while True:
                    await ws.recv()
        except ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
    return None


async def test_bad_tokens_close_with_4401(harness: Harness) -> None:
    guard = await harness.make_guard()
    token = (await harness.post(f"/api/v1/guards/{guard['id']}/tokens")).json()
    operator = await harness.token("operator")
    cases = [
        ({"Authorization": "Bearer gdt_nope.secret"}, None),
        ({"Authorization": f"Bearer {token['token']}x"}, None),
        ({"Authorization": f"Bearer {operator}"}, None),  # a console token is not a device token
        ({}, json.dumps({"type": "hello", "token": "garbage"})),
        ({}, json.dumps({"type": "hello"})),
        ({}, json.dumps({"type": "ping"})),
        ({}, "not json"),
    ]
    for headers, first in cases:
        assert await close_code(harness, headers, first) == 4401, (headers, first)
    await harness.client.delete(
        f"/api/v1/guards/{guard['id']}/tokens/{token['token_id']}", headers=await harness.headers()
    )
    assert await close_code(harness, {"Authorization": f"Bearer {token['token']}"}) == 4401


async def test_revoking_a_token_closes_its_live_connection(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    token_id = phone.token.split(".")[0]
    await harness.client.delete(
        f"/api/v1/guards/{phone.id}/tokens/{token_id}", headers=await harness.headers()
    )
    assert await phone.closed_with() == 4401
    # The token was resolved (and remembered) when it connected: revoking forgets it.
    assert await close_code(harness, {"Authorization": f"Bearer {phone.token}"}) == 4401


async def test_a_guard_who_left_can_no_longer_connect(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await phone.close()
    left = await harness.patch(f"/api/v1/guards/{phone.id}", {"status": "left"})
    assert left.status_code == 200, left.text
    assert await close_code(harness, {"Authorization": f"Bearer {phone.token}"}) == 4401


async def test_token_in_hello_works_for_clients_without_headers(
    harness: Harness, area: tuple[float, float]
) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    welcome = await phone.connect(token_in_hello=True)
    assert (
        welcome["guard_id"] == guard["id"]
        and welcome["last_seq"] == 0
        and welcome["server_time"].endswith("Z")
    )
    await phone.sync()
    await phone.close()


BAD_FRAMES = [
    ("not json", "invalid_json", None),
    ("[1, 2]", "invalid_frame", None),
    ('{"no_type": 1}', "invalid_frame", None),
    ('{"type": "teleport"}', "unknown_type", "teleport"),
    (
        '{"type": "location", "lat": 91, "lon": 117, "at": "2026-01-01T00:00:00Z"}',
        "invalid_frame",
        "location",
    ),
    (
        '{"type": "location", "lat": "39", "lon": 117, "at": "2026-01-01T00:00:00Z"}',
        "invalid_frame",
        "location",
    ),
    ('{"type": "location", "lat": 39, "lon": 117}', "invalid_frame", "location"),
    (
        '{"type": "location", "lat": 39, "lon": 117, "at": "2026-01-01T00:00:00"}',
        "invalid_frame",
        "location",
    ),
    (
        '{"type": "location", "lat": NaN, "lon": 117, "at": "2026-01-01T00:00:00Z"}',
        "invalid_frame",
        "location",
    ),
    ('{"type": "duty", "on": "yes"}', "invalid_frame", "duty"),
    ('{"type": "ack", "seq": -1}', "invalid_frame", "ack"),
    ('{"type": "offer.accept"}', "invalid_frame", "offer.accept"),
    ('{"type": "offer.accept", "offer_id": "off_nope"}', "not_found", "offer.accept"),
    ('{"type": "offer.decline", "offer_id": "off_nope"}', "not_found", "offer.decline"),
    (
        '{"type": "assignment.status", "assignment_id": "asg_x", "status": "flying"}',
        "invalid_frame",
        "assignment.status",
    ),
    (
        '{"type": "assignment.status", "assignment_id": "asg_x", "status": "on_scene"}',
        "not_found",
        "assignment.status",
    ),
    (
        '{"type": "report", "category": "alien", "description": "x", "lat": 1, "lon": 1}',
        "invalid_frame",
        "report",
    ),
    ('{"type": "backup.request", "incident_id": "inc_nope"}', "not_found", "backup.request"),
    ('{"type": "ping", "extra": 1}', "invalid_frame", "ping"),
]


@pytest.mark.parametrize("text,code,ref", BAD_FRAMES, ids=[c[0][:40] for c in BAD_FRAMES])
async def test_bad_frame_gets_an_error_frame_and_the_connection_stays_open(
    harness: Harness, area: tuple[float, float], text: str, code: str, ref: str | None
) -> None:
    phone = await guard_at(harness, area)
    await phone.send_raw(text)
    error = await phone.expect("error")
    assert error["code"] == code, error
    assert error.get("ref") == ref and error["message"]
    await phone.sync()  # still open and serving
    await phone.close()


async def test_bad_pings_are_rejected_and_not_stored(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    now = harness.now()
    bad = [
        ({"at": isoformat(now.replace(year=now.year + 1))}, "invalid_location", "future"),
        ({"at": isoformat(now.replace(year=now.year - 1))}, "invalid_location", "too old"),
        ({"lat": area[0] + 0.1}, "invalid_location", "impossible jump"),  # 11 km in ~0 s
    ]
    for extra, code, words in bad:
        harness.clock.advance(1)
        frame = {
            "type": "location",
            "lat": area[0],
            "lon": area[1],
            "at": isoformat(harness.now()),
            **extra,
        }
        await phone.send(frame)
        error = await phone.expect("error")
        assert error["code"] == code and words in error["message"], error
    await phone.send({"type": "location", "lat": area[0], "lon": area[1], "at": isoformat(now)})
    assert (await phone.expect("error"))["code"] == "stale_location"
    await phone.sync()
    await harness.ctx.positions.flush()
    async with harness.ctx.db.transaction(readonly=True) as session:
        stored = await session.get(GuardPresence, phone.id)
    assert (
        stored is not None
        and stored.lat == pytest.approx(area[0])
        and stored.lon == pytest.approx(area[1])
    )
    await phone.close()


async def test_pings_off_duty_are_refused_and_not_stored(
    harness: Harness, area: tuple[float, float]
) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    await phone.connect()
    await phone.locate(*area)
    assert (await phone.expect("error"))["code"] == "off_duty"
    await harness.ctx.positions.flush()
    async with harness.ctx.db.transaction(readonly=True) as session:
        assert await session.get(GuardPresence, guard["id"]) is None
    await phone.close()


async def test_positions_are_written_behind_in_batches(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    for step in range(1, 4):
        harness.clock.advance(5)
        await phone.locate(*offset(area, north_m=20 * step))
    await phone.sync()
    await harness.ctx.positions.flush()
    async with harness.ctx.db.transaction(readonly=True) as session:
        stored = await session.get(GuardPresence, phone.id)
    assert stored is not None and stored.on_duty
    assert stored.lat == pytest.approx(offset(area, north_m=60)[0])
    assert stored.seen_at is not None and stored.accuracy_m == 5
    await phone.close()


async def test_second_connection_replaces_the_first(
    harness: Harness, area: tuple[float, float]
) -> None:
    first = await guard_at(harness, area)
    second = Phone(harness, first.guard, first.token)
    await second.connect()
    assert await first.closed_with() == 4409
    await second.sync()
    await harness.make_incident(area, priority=3)
    assert (await second.expect("offer"))["incident"]["location"]["lat"] == pytest.approx(area[0])
    await second.close()


async def test_resume_replays_the_unacked_offer_exactly_once(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await harness.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    await phone.close()  # received but never acknowledged

    await phone.connect()
    replayed = await phone.expect("offer")
    assert replayed == offer
    await phone.quiet("offer", within=0.3)
    await phone.ack(replayed["seq"])
    await phone.sync()
    await phone.close()

    welcome = await phone.connect()
    assert welcome["last_seq"] == offer["seq"]
    await phone.quiet("offer", within=0.3)
    await phone.close()


async def test_resume_after_skips_what_the_client_already_has(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await harness.make_incident(area, priority=3)
    offer = await phone.expect("offer")
    harness.clock.advance(31)
    withdrawn = await phone.expect("offer.withdrawn")
    assert withdrawn["seq"] == offer["seq"] + 1
    await phone.close()
    await phone.connect(resume_after=offer["seq"])
    replay = await phone.expect("offer.withdrawn")
    assert replay == withdrawn
    await phone.quiet("offer", within=0.3)
    await phone.close()


async def test_oversized_and_flooding_frames_are_refused(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await phone.send_raw(json.dumps({"type": "ping", "pad": "x" * 20_000}))
    assert (await phone.expect("error"))["code"] == "frame_too_large"
    for _ in range(120):
        await phone.send({"type": "ping"})
    throttled = await phone.expect("error", timeout=5)
    assert throttled["code"] == "rate_limited"
    await asyncio.sleep(1.0)
    await phone.sync()  # after a pause the connection serves again
    await phone.close()


async def test_silent_client_is_dropped_and_its_position_goes_stale(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url, ws_idle_timeout_s=0.4) as quick:
        company = await quick.make_company()
        phone = await guard_at(quick, area, company["id"])
        assert (
            await quick.get("/api/v1/guards/nearby", params={"lat": area[0], "lon": area[1]})
        ).json()["items"]
        assert await phone.closed_with(timeout=5) == 4408
        await asyncio.sleep(0.1)
        nearby = (
            await quick.get("/api/v1/guards/nearby", params={"lat": area[0], "lon": area[1]})
        ).json()
        assert nearby["items"] == []


async def test_browser_origin_must_be_allowed(harness: Harness) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    with pytest.raises(Exception) as refused:
        await connect(
            f"{harness.ws_url}/ws/guard",
            additional_headers={
                "Authorization": f"Bearer {phone.token}",
                "Origin": "https://evil.example",
            },
        )
    assert "403" in str(refused.value)


async def test_index_is_rebuilt_from_the_database_on_start(
    own_database_url: str, area: tuple[float, float]
) -> None:
    async with start_harness(own_database_url) as first:
        phone = await guard_at(first, area)
        guard_id = phone.id
        await phone.close()
        await first.ctx.positions.flush()
        # Closing the socket marked it stale in this process; the database keeps the position.
    async with start_harness(own_database_url) as second:
        entry = second.ctx.live.get(guard_id)
        assert entry is not None and entry.on_duty
        assert (entry.lat, entry.lon) == pytest.approx(area)
        async with second.ctx.db.transaction(readonly=True) as session:
            stored = await session.scalar(
                select(GuardPresence).where(GuardPresence.guard_id == guard_id)
            )
        assert stored is not None and stored.on_duty


async def test_settings_build_a_server(database_url: str) -> None:
    settings = settings_for(database_url)
    from app.main import create_app

    async with serve(create_app(settings), settings) as url:
        assert url.startswith("http://127.0.0.1:")


# Replay, acks, flood and slow readers (issue 9, items 5–7) ---------------------------


async def write_frames(harness: Harness, guard_id: str, count: int, text: str = "note") -> None:
    """Commit `count` instruction frames for the guard in one transaction."""
    async with harness.ctx.db.transaction() as session:
        for i in range(count):
            frame = instruction_frame("inc_test", f"{text} {i}", "test")
            await outbox.enqueue(session, harness.ctx, guard_id, frame)


async def read_until(phone: Phone, last_seq: int) -> list[int]:
    """The seqs of the frames received up to `last_seq` (each read bounded)."""
    seqs: list[int] = []
    while not seqs or seqs[-1] < last_seq:
        frame = await phone.recv()
        if "seq" in frame:
            seqs.append(frame["seq"])
    return seqs


async def test_resume_drains_every_unacked_frame_in_order(harness: Harness) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    await write_frames(harness, phone.id, 1_234)
    welcome = await phone.connect()
    first = welcome["resumed_after"] + 1
    assert welcome["last_seq"] == first + 1_233
    assert await read_until(phone, welcome["last_seq"]) == list(range(first, first + 1_234))
    await phone.close()

    # Again, with frames committed one by one while the replay is under way.
    welcome = await phone.connect()

    async def write_during_replay() -> None:
        for _ in range(40):
            await write_frames(harness, phone.id, 1, "late")

    writer = asyncio.create_task(write_during_replay())
    seqs = await read_until(phone, welcome["last_seq"] + 40)
    await writer
    assert seqs == list(range(first, welcome["last_seq"] + 41))
    await phone.quiet("instruction", within=0.3)
    await phone.close()


@needs_proc_net_tcp
async def test_a_phone_that_never_reads_is_closed_and_its_socket_released(
    harness: Harness,
) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    loop = asyncio.get_running_loop()
    server_port = int(harness.base_url.rsplit(":", 1)[1])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills up fast
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", server_port)), WAIT_S)
        client = ClientProtocol(parse_uri(f"{harness.ws_url}/ws/guard"))
        request = client.connect()
        request.headers["Authorization"] = f"Bearer {phone.token}"
        client.send_request(request)
        await loop.sock_sendall(sock, b"".join(client.data_to_send()))
        async with asyncio.timeout(WAIT_S):
            while client.state is not State.OPEN:
                client.receive_data(await loop.sock_recv(sock, 4096))
        client.send_text(json.dumps({"type": "hello"}).encode())
        await loop.sock_sendall(sock, b"".join(client.data_to_send()))
        async with asyncio.timeout(WAIT_S):
            while (link := harness.ctx.hub.guard_link(phone.id)) is None:
                await asyncio.sleep(0.01)
        # From here on the phone never reads: frames pile up until the server gives up.
        for _ in range(40):
            await write_frames(harness, phone.id, 100, "x" * 8_000)
            if link.closing is not None:
                break
        assert link.closing is not None and link.closing[0] == 4008
        async with asyncio.timeout(15):
            while harness.ctx.hub.guard_link(phone.id) is not None or server_socket_open(
                server_port, sock.getsockname()[1]
            ):
                await asyncio.sleep(0.05)
    finally:
        sock.close()


async def test_resume_after_is_stored_as_an_ack(harness: Harness) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    await write_frames(harness, phone.id, 3)
    welcome = await phone.connect()
    seqs = [welcome["resumed_after"] + n for n in (1, 2, 3)]
    assert await read_until(phone, seqs[2]) == seqs
    await phone.close()

    await phone.connect(resume_after=seqs[1])
    assert (await phone.expect("instruction"))["seq"] == seqs[2]
    await phone.close()  # the last frame is still unacknowledged

    welcome = await phone.connect(resume_after=0)
    assert welcome["resumed_after"] == seqs[1]
    assert (await phone.expect("instruction"))["seq"] == seqs[2]
    await phone.quiet("instruction", within=0.3)
    await phone.close()


async def test_acking_a_long_replay_is_not_rate_limited(harness: Harness) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    count = 3 * harness.ctx.settings.ws_frame_burst
    await write_frames(harness, phone.id, count)
    welcome = await phone.connect()
    seqs = await read_until(phone, welcome["last_seq"])
    assert len(seqs) == count
    for seq in seqs:
        await phone.ack(seq)
    await phone.sync()
    assert not [f for f in phone.inbox if f["type"] == "error"], phone.inbox
    await phone.close()

    welcome = await phone.connect()
    assert welcome["resumed_after"] == seqs[-1]
    await phone.quiet("instruction", within=0.3)
    await phone.close()


async def test_a_sustained_flood_is_closed_with_4429(harness: Harness) -> None:
    guard = await harness.make_guard()
    phone = await phone_for(harness, guard)
    await phone.connect()
    assert phone.ws is not None
    flood = 20 * harness.ctx.settings.ws_frame_burst  # twice what the server puts up with
    with contextlib.suppress(ConnectionClosed):
        for _ in range(flood):
            await phone.ws.send('{"type":"ping"}')
    assert await phone.closed_with(timeout=20) == 4429


OUT_OF_RANGE = [
    ('{"type":"ack","seq":9223372036854775808}', "ack.seq"),
    ('{"type":"ack","seq":18446744073709551616}', "ack.seq"),
    ('{"type":"ack","seq":-1}', "ack.seq"),
    ('{"type":"ack","seq":1.5}', "ack.seq"),
    ('{"type":"ack","seq":1e3}', "ack.seq"),
    ('{"type":"hello","resume_after":9223372036854775808}', "hello.resume_after"),
    ('{"type":"hello","resume_after":-5}', "hello.resume_after"),
    ('{"type":"location","lat":1,"lon":1,"at":"0001-01-01T00:00:00Z"}', "location.at"),
    ('{"type":"location","lat":1,"lon":1,"at":"9999-12-31T23:59:59Z"}', "location.at"),
    ('{"type":"location","lat":1,"lon":1,"at":"0001-01-01T00:00:00+01:00"}', "location.at"),
    ('{"type":"location","lat":1,"lon":1,"at":"9999-12-31T23:59:59-01:00"}', "location.at"),
    ('{"type":"location","lat":1,"lon":1,"at":1700000000}', "location.at"),
    ('{"type":"location","lat":1,"lon":1,"at":"2026-01-01T00:00:00Z","heading":"9"}', "heading"),
    ('{"type":"location","lat":1,"lon":1,"at":"2026-01-01T00:00:00Z","speed_mps":1e999}', "speed"),
    (
        '{"type":"report","category":"theft","priority":2.0,"description":"x","lat":1,"lon":1}',
        "pri",
    ),
]


async def test_out_of_range_numbers_and_times_get_invalid_frame(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    for text, field in OUT_OF_RANGE:
        await phone.send_raw(text)
        error = await phone.expect("error")
        assert error["code"] == "invalid_frame" and field in error["message"], (text, error)
        await phone.sync()
    # Large but in range: nothing to acknowledge that far, so nothing happens.
    for seq in (2**31, 2**40, 2**63 - 1):
        await phone.ack(seq)
        await phone.send({"type": "hello", "resume_after": seq})
        await phone.expect("welcome")
    await phone.sync()
    assert not [f for f in phone.inbox if f["type"] == "error"], phone.inbox
    await phone.close()
