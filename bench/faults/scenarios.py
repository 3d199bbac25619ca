"""The faults, one function each, run on a Stage under load; each returns its own checks.

Phases are in seconds times `scale` (--seconds), except where the service's own timings
bound them: the webhook receiver fails for less than the first retry delay (5 s ±10 %),
so each delivery fails at most once and its retry comes within the run (the next retry
would be 5 minutes later, app/integrations/delivery.py RETRY_DELAYS_S).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bench.common import percentile
from bench.faults import postgres
from bench.faults.cluster import slowest_answer_s
from bench.faults.ledger import clock_time
from bench.faults.stage import Stage
from bench.faults.workload import Attempt

RECOVERY_S = 15.0  # a replica must serve again within this of the fault's end


@dataclass
class Check:
    label: str
    value: str
    failed: bool = False


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    run: Callable[[Stage, float], Awaitable[list[Check]]]
    db_proxied_last: bool = False  # the last replica reaches PostgreSQL through a proxy
    guards_via_proxy: bool = False  # phones homed on replica 0 reach it through a proxy


def _victim(stage: Stage) -> int:
    return len(stage.cluster.servers) - 1


async def _ready_again(stage: Stage, replica: int, timeout_s: float = RECOVERY_S) -> float | None:
    """Seconds until the replica answers /readyz and a read of the incidents with 200;
    None if it did not within timeout_s."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        ready = await stage.api.once(replica, "GET", "/readyz", "recovery probe readyz")
        if ready is not None and ready.status_code == 200:
            read = await stage.api.once(
                replica, "GET", "/api/v1/incidents?limit=1", "recovery probe read"
            )
            if read is not None and read.status_code == 200:
                return time.monotonic() - started
        await asyncio.sleep(0.2)
    return None


def _answers(attempts: list[Attempt], bound_s: float) -> list[Check]:
    """How requests made during a fault were answered, and whether they failed fast."""
    if not attempts:
        return [Check("requests during the fault", "none made", failed=True)]
    seconds = sorted(a.seconds for a in attempts)
    slow = [a for a in attempts if a.seconds > bound_s]
    unavailable = sum(1 for a in attempts if a.status == 503)
    # Readiness probes answer 503 by design, with no promise of a Retry-After.
    without_retry_after = sum(
        1 for a in attempts if a.status == 503 and not a.retry_after and "readyz" not in a.what
    )
    no_answer = sum(1 for a in attempts if a.status == 0)
    return [
        Check(
            "requests during the fault",
            f"{len(attempts)}: {unavailable} × 503, {no_answer} unanswered, "
            f"p50 {percentile(seconds, 50):.2f} s, max {seconds[-1]:.2f} s",
        ),
        Check(
            f"requests slower than {bound_s:.0f} s (2 × {bound_s / 2:.0f} s)",
            str(len(slow)),
            bool(slow),
        ),
        Check("503 without Retry-After", str(without_retry_after), bool(without_retry_after)),
        *(
            Check(
                f"  slow: {a.what} on replica {a.replica} at {clock_time(a.started)}",
                f"{a.seconds:.1f} s, " + (str(a.status) if a.status else "no answer"),
            )
            for a in sorted(slow, key=lambda a: a.started)[:6]
        ),
    ]


def _during(stage: Stage, replica: int | None, start: float, end: float) -> list[Attempt]:
    return [
        a
        for a in stage.record.attempts
        if start <= a.started < end and (replica is None or a.replica == replica)
    ]


async def kill_replica(stage: Stage, scale: float) -> list[Check]:
    """kill -9 a replica mid-wave; its guards dial the others and resume; restart it."""
    victim = _victim(stage)
    cluster = stage.cluster
    load = asyncio.create_task(stage.workload.run(20 * scale))
    await asyncio.sleep(5 * scale)
    homed = [p for p in stage.phones if p.urls[0] == cluster.ws_urls[victim]]
    dialled = {p.guard_id: p.log.connections for p in homed}
    with stage.fault():
        cluster.kill(victim)
        killed_at = time.monotonic()
        moved_s: list[float] = []
        if len(cluster.servers) > 1:
            waiting = set(dialled)
            while waiting and time.monotonic() - killed_at < 5 * scale:
                for p in homed:
                    if p.guard_id in waiting and p.log.connections > dialled[p.guard_id]:
                        waiting.discard(p.guard_id)
                        moved_s.append(time.monotonic() - killed_at)
                await asyncio.sleep(0.05)
        await asyncio.sleep(max(0.0, 5 * scale - (time.monotonic() - killed_at)))
        await cluster.start(victim)
    await load
    checks = [Check("replica killed (SIGKILL), restarted after", f"{5 * scale:.0f} s")]
    if len(cluster.servers) > 1:
        checks.append(
            Check(
                "its guards back on another replica",
                f"{len(moved_s)} of {len(homed)}, last after "
                f"{max(moved_s, default=float('nan')):.1f} s",
                len(moved_s) < len(homed),
            )
        )
    return checks


async def restart_postgres(stage: Stage, scale: float) -> list[Check]:
    """`pg_ctlcluster … restart` under load: 503s while it is down, then everything resumes."""
    cluster = postgres.cluster_of(stage.cluster.url)
    load = asyncio.create_task(stage.workload.run(20 * scale))
    await asyncio.sleep(5 * scale)
    start = time.time()
    with stage.fault():
        took = await asyncio.to_thread(postgres.restart, cluster)
        await postgres.wait_accepting(stage.cluster.url)
    back = time.time()
    ready = await asyncio.gather(
        *(_ready_again(stage, i) for i in range(len(stage.cluster.servers)))
    )
    await load
    checks = [Check(f"PostgreSQL {'/'.join(cluster)} restart took", f"{took:.1f} s")]
    for i, seconds in enumerate(ready):
        checks.append(
            Check(
                f"replica {i} ready again after PostgreSQL was",
                "never" if seconds is None else f"{seconds:.1f} s",
                seconds is None,
            )
        )
    return checks + _answers(_during(stage, None, start, back), 2 * slowest_answer_s())


async def hung_database(stage: Stage, scale: float) -> list[Check]:
    """One replica's PostgreSQL hangs (its proxy stalls): that replica answers 503 fast,
    the others carry on; it serves again once the proxy passes."""
    victim = _victim(stage)
    proxy = stage.cluster.proxies[victim]
    load = asyncio.create_task(stage.workload.run(24 * scale))
    await asyncio.sleep(5 * scale)
    start = time.time()
    with stage.fault():
        proxy.stall()
        probes = [asyncio.create_task(_probe(stage, victim, 8 * scale)) for _ in range(4)]
        await asyncio.gather(*probes)
        proxy.resume()
    end = time.time()
    recovered = await _ready_again(stage, victim)
    await load
    checks = [
        Check(
            f"replica {victim} serves again after the proxy passes",
            "never" if recovered is None else f"{recovered:.1f} s",
            recovered is None,
        )
    ]
    return checks + _answers(_during(stage, victim, start, end), 2 * slowest_answer_s())


async def _probe(stage: Stage, replica: int, seconds: float) -> None:
    """Requests to the hung replica, one after another: readiness, a read, an incident."""
    deadline = time.monotonic() + seconds
    turn = 0
    while time.monotonic() < deadline:
        if turn % 3 == 0:
            await stage.api.once(replica, "GET", "/readyz", "readyz")
        elif turn % 3 == 1:
            await stage.api.once(replica, "GET", "/api/v1/incidents?limit=5", "list incidents")
        else:
            await stage.workload.incident(first=replica)
        turn += 1


async def guard_sockets(stage: Stage, scale: float) -> list[Check]:
    """Guard sockets through a proxy: cut, then left half-open, then every new one hung."""
    proxy = stage.guard_proxy
    assert proxy is not None
    proxied = [p for p in stage.phones if p.urls[0].endswith(f":{proxy.port}")]
    dialled = sum(p.log.connections for p in proxied)
    load = asyncio.create_task(stage.workload.run(30 * scale))
    await asyncio.sleep(4 * scale)
    with stage.fault():
        proxy.cut()  # reset, and refused for a while
        await asyncio.sleep(3 * scale)
        proxy.resume()
    await asyncio.sleep(4 * scale)
    with stage.fault():
        proxy.stall_existing()  # half-open: the phones notice by their keepalive, dial again
        await asyncio.sleep(6 * scale)
        proxy.resume()
    await asyncio.sleep(3 * scale)
    with stage.fault():
        proxy.stall()  # open sockets and new ones alike go nowhere
        await asyncio.sleep(5 * scale)
        proxy.resume()
    await load
    reasons: dict[str, int] = {}
    for p in proxied:
        for name, count in p.log.failures.items():
            reasons[name] = reasons.get(name, 0) + count
    return [
        Check(
            "phones behind the proxy, reconnections",
            f"{len(proxied)}, {sum(p.log.connections for p in proxied) - dialled}",
        ),
        Check("why their sockets ended or failed to open", str(reasons or "none")),
    ]


async def webhook_receiver(stage: Stage, scale: float) -> list[Check]:
    """The police system's endpoint answers 500, then hangs past the sender's timeout."""
    receiver = stage.receiver
    load = asyncio.create_task(stage.workload.run(24 * scale))
    await asyncio.sleep(6 * scale)
    with stage.fault():
        # One window shorter than the first retry delay: whatever fails in it is retried
        # after it, however far behind the sender is (a second failure would wait 5 min).
        receiver.mode = "fail"
        await asyncio.sleep(2.2)
        receiver.mode, receiver.hang_s = "hang", 3.0  # past DISPATCH_WEBHOOK_TIMEOUT_S=2
        await asyncio.sleep(2.2)
        receiver.mode = "ok"
    await load
    hits = receiver.hits
    failed = sum(1 for h in hits if h.status == 500)
    hung_up = sum(1 for h in hits if h.status == 0)
    return [
        Check("attempts answered 500 / abandoned by the sender", f"{failed} / {hung_up}"),
        Check(
            "attempts with a bad signature",
            str(sum(1 for h in hits if not h.signed)),
            any(not h.signed for h in hits),
        ),
    ]


SCENARIOS = (
    Scenario("kill-replica", "kill -9 a replica mid-wave, then restart it", kill_replica),
    Scenario("restart-postgres", "restart PostgreSQL under load", restart_postgres),
    Scenario(
        "hung-database",
        "a replica's PostgreSQL hangs (TCP proxy stalls), then passes again",
        hung_database,
        db_proxied_last=True,
    ),
    Scenario(
        "guard-sockets",
        "guard sockets cut, left half-open, then hung (TCP proxy)",
        guard_sockets,
        guards_via_proxy=True,
    ),
    Scenario(
        "webhook-receiver",
        "the webhook receiver answers 500, then hangs, then recovers",
        webhook_receiver,
    ),
)


def common_checks(stage: Stage) -> list[Check]:
    """What every scenario must also show: no 500s, and how slow answers got."""
    attempts = stage.record.attempts
    errors = [a for a in attempts if a.status >= 500 and a.status != 503]
    answered = sorted((a for a in attempts if a.status), key=lambda a: a.seconds)
    lost_frames = sum(p.log.gaps for p in stage.phones)
    errors_frames: collections.Counter[str] = collections.Counter()
    for phone in stage.phones:
        errors_frames.update(phone.errors)
    slowest = "none"
    if answered:
        a = answered[-1]
        slowest = f"{a.seconds:.2f} s ({a.what} on replica {a.replica}, {a.status})"
    now = time.time()
    stuck = [
        Check(
            f"  phone {p.guard_id} behind at the end",
            f"has seq {p.log.max_seq} of {stage.behind[p.guard_id]}, "
            f"{'connected' if p.connected.is_set() else 'not connected'}, "
            f"{p.log.connections} welcomes (last {now - p.log.welcomed_at:.0f} s ago), "
            f"last frame {now - p.log.frame_at:.0f} s ago, failures {p.log.failures}",
        )
        for p in stage.phones
        if p.guard_id in stage.behind
    ][:5]
    return [
        *stuck,
        Check(
            "requests made / answered 5xx other than 503",
            f"{len(attempts)} / {len(errors)}",
            bool(errors),
        ),
        Check("slowest answer", slowest),
        Check("phones that saw a seq gap on one socket", str(lost_frames), bool(lost_frames)),
        *(
            Check(
                f"  {a.status} to {a.what} on replica {a.replica} at {clock_time(a.started)}",
                a.answer,
            )
            for a in errors[:5]
        ),
        Check(
            "error frames the phones received",
            str(dict(errors_frames)) if errors_frames else "none",
        ),
        Check(
            "incidents never confirmed (no 201 within the retry window)",
            str(len(stage.record.unconfirmed)),
            bool(stage.record.unconfirmed),
        ),
    ]
