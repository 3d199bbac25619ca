"""The run: sign in, recruit guards, start their phones, the incident stream and the police."""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import sys
import time
from collections.abc import Callable
from typing import Any

import httpx

from app.simulate.alarms import AlarmCompany
from app.simulate.api import Api, ApiError, ServerUnavailable
from app.simulate.config import SimulationConfig
from app.simulate.crew import Recruit, pick_guards
from app.simulate.incidents import next_gap_s, plan_incident
from app.simulate.phone import GuardPhone
from app.simulate.police import PoliceDesk
from app.simulate.stats import Stats

Report = Callable[[str], None]
CLEANUP_TIMEOUT_S = 15.0
HTTP_TIMEOUT_S = 15.0


def _print(line: str) -> None:
    print(line, flush=True)


async def simulate(
    config: SimulationConfig, stop: asyncio.Event | None = None, report: Report = _print
) -> Stats:
    """Run until `stop` is set or `config.duration_s` passes; ServerUnavailable/ApiError
    when the server cannot be reached or refuses to set the run up."""
    stop = stop or asyncio.Event()
    rng = random.Random(config.seed)
    run_tag = f"{config.seed if config.seed is not None else 'x'}-{int(time.time()):x}"
    stats = Stats()
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=config.url, timeout=HTTP_TIMEOUT_S) as client:
        api = Api(client, config.username, config.password)
        await api.wait_ready(config.wait_ready_s)
        await api.sign_in()
        guards = await api.guards(config.company_id)
        recruits = pick_guards(guards, config.guards, config.bounds, rng)
        tokens: list[tuple[str, str]] = []  # (guard id, token id) to revoke at the end
        alarms = AlarmCompany(api, config.behaviour, rng, stats)
        try:
            phones = await _phones(api, config, recruits, rng, stats, tokens)
            if config.cad_share > 0 or config.police:
                await api.create_cad_key(run_tag)
            company_id = config.company_id or _company_of(guards, recruits)
            if config.alarms_per_minute > 0 and company_id and recruits:
                await alarms.set_up(company_id, recruits[0].post, run_tag)
            report(
                f"simulating {len(phones)} guards, "
                f"{config.incidents_per_minute:g} incidents/min and "
                f"{config.alarms_per_minute if alarms.site else 0:g} alarms/min "
                f"against {config.url} (Ctrl-C stops)"
            )
            desk = PoliceDesk(api, config.behaviour, rng, stats, act=config.police)
            desk.reporters = {recruit.guard_id for recruit in recruits}
            async with asyncio.TaskGroup() as group:
                group.create_task(alarms.run(config.alarms_per_minute, stop))
                for phone in phones:
                    group.create_task(phone.run(stop), name=f"guard-{phone.guard_id}")
                group.create_task(desk.run(stop))
                group.create_task(
                    _post_incidents(api, desk, config, recruits, run_tag, rng, stats, stop)
                )
                group.create_task(_summaries(stats, stop, report, config.summary_every_s, started))
                if config.duration_s is not None:
                    group.create_task(_stop_after(stop, config.duration_s))
        finally:
            stop.set()
            await _clean_up(api, tokens, alarms)
    report(stats.summary(time.monotonic() - started))
    return stats


async def _phones(
    api: Api,
    config: SimulationConfig,
    recruits: list[Recruit],
    rng: random.Random,
    stats: Stats,
    tokens: list[tuple[str, str]],
) -> list[GuardPhone]:
    ws_url = config.url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    phones = []
    for recruit in recruits:
        issued = await api.issue_device_token(recruit.guard_id)
        tokens.append((recruit.guard_id, str(issued["token_id"])))
        phone_rng = random.Random(rng.getrandbits(64))
        phones.append(
            GuardPhone(
                recruit, str(issued["token"]), ws_url, config.behaviour, config.bounds,
                phone_rng, stats,
            )
        )  # fmt: skip
    stats.guards = len(phones)
    return phones


async def _post_incidents(
    api: Api,
    desk: PoliceDesk,
    config: SimulationConfig,
    recruits: list[Recruit],
    run_tag: str,
    rng: random.Random,
    stats: Stats,
    stop: asyncio.Event,
) -> None:
    """Incidents at random (Poisson) intervals, some from the console, some from the CAD."""
    posts = [recruit.post for recruit in recruits]
    number = 0
    while (gap := next_gap_s(rng, config.incidents_per_minute)) is not None:
        if await _wait(stop, gap):
            return
        number += 1
        planned = plan_incident(
            rng, posts, config.bounds, number=number, run_tag=run_tag,
            cad_share=config.cad_share, drill_share=config.drill_share,
        )  # fmt: skip
        via_cad = planned.via_cad and api.cad_key is not None
        try:
            incident = await api.post_incident(planned.body, as_cad=via_cad)
        except ApiError as exc:
            stats.error(exc.code)
        except ServerUnavailable:
            stats.error("http_unreachable")
        else:
            stats.incidents_posted += 1
            stats.drills += bool(incident.get("exercise"))
            desk.follow(str(incident["id"]))


async def _summaries(
    stats: Stats, stop: asyncio.Event, report: Report, every_s: float, started: float
) -> None:
    while not await _wait(stop, every_s):
        report(stats.summary(time.monotonic() - started))


async def _stop_after(stop: asyncio.Event, seconds: float) -> None:
    if not await _wait(stop, seconds):
        stop.set()


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`; True as soon as `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _clean_up(api: Api, tokens: list[tuple[str, str]], alarms: AlarmCompany) -> None:
    """Revoke the run's device tokens and keys, so nothing it issued stays usable."""
    with contextlib.suppress(ApiError, ServerUnavailable, TimeoutError):
        async with asyncio.timeout(CLEANUP_TIMEOUT_S):
            for guard_id, token_id in tokens:
                await api.revoke_device_token(guard_id, token_id)
            await api.revoke_cad_key()
            await alarms.revoke_key()


def _company_of(guards: list[dict[str, Any]], recruits: list[Recruit]) -> str | None:
    """The company of the first simulated guard: its alarm receiver is the simulated one."""
    if not recruits:
        return None
    first = next(g for g in guards if str(g["id"]) == recruits[0].guard_id)
    return str(first["company_id"])


def run(config: SimulationConfig) -> int:
    """The command: run until Ctrl-C (SIGINT/SIGTERM) or the duration; the exit code."""
    return asyncio.run(_run(config))


async def _run(config: SimulationConfig) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()

    def interrupted() -> None:
        if stop.is_set() and main is not None:
            main.cancel()  # a second Ctrl-C: stop waiting for the guards to sign off
            return
        print("\nstopping: guards sign off, sockets close …", file=sys.stderr, flush=True)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, interrupted)
    try:
        await simulate(config, stop)
    except ServerUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ApiError as exc:
        print(f"error: the server refused the simulator's set-up: {exc}", file=sys.stderr)
        return 1
    except asyncio.CancelledError:
        print("stopped without waiting for the guards to sign off", file=sys.stderr)
        return 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0
