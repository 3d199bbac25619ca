"""Run the fault scenarios and print each one's ledger; exit 1 unless every count is clean.

    .venv/bin/python -m bench.faults [--scenario NAME] [--replicas 2] [--guards 40] [--rate 3]
        [--seconds 1.0]

PostgreSQL is BENCH_PG_URL's (default postgresql+asyncpg://postgres@127.0.0.1:5432/test);
each scenario creates its own database and drops it. `restart-postgres` restarts that
cluster with pg_ctlcluster, so it needs the local Debian cluster and rights to restart it;
the suite makes sure PostgreSQL is up again before it exits, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import time
import traceback
from pathlib import Path

from bench.common import PG_URL, machine_line, raise_nofile
from bench.faults import postgres
from bench.faults.ledger import KINDS, Ledger, clock_time
from bench.faults.scenarios import SCENARIOS, Check, Scenario, common_checks
from bench.faults.stage import staged

SCENARIO_LIMIT_S = 90.0  # one fault script (× --seconds); settling is bounded apart


def print_table(scenario: Scenario, ledger: Ledger, checks: list[Check], header: str) -> None:
    print(f"\n== {scenario.name}: {scenario.title}")
    print(f"   {header}")
    print(
        f"   {'kind':<12} {'ok':>6} {'lost':>6} {'dup-unflagged':>14} {'unexpected':>11}"
        f" {'flagged dup':>12}"
    )
    for kind in KINDS:
        t = ledger.tallies[kind]
        print(
            f"   {kind:<12} {t.ok:>6} {t.lost:>6} {t.dup_unflagged:>14} {t.unexpected:>11}"
            f" {t.flagged:>12}"
        )
    print(f"   timers fired late (> 5 s after recovery): {ledger.late_timers}")
    print(f"   incidents not in a legal state: {ledger.illegal_incidents}")
    for check in checks:
        mark = "  FAILED" if check.failed else ""
        print(f"   {check.label}: {check.value}{mark}")
    for example in ledger.examples:
        print(f"     - {example}")


async def run_one(scenario: Scenario, args: argparse.Namespace) -> bool:
    started = time.monotonic()
    replicas, guards, scale, logs = args.replicas, args.guards, args.seconds, args.logs
    proxied = frozenset({replicas - 1}) if scenario.db_proxied_last else frozenset()
    async with staged(
        replicas,
        guards,
        db_proxied=proxied,
        guards_via_proxy=scenario.guards_via_proxy,
        rate=args.rate,
    ) as stage:
        cpu0 = time.process_time()
        try:
            async with asyncio.timeout(SCENARIO_LIMIT_S * max(1.0, scale)):
                checks = await scenario.run(stage, scale)
        except TimeoutError:
            checks = [Check("the fault script", "did not finish in time", failed=True)]
        settle_s = await stage.settle()  # bounded on its own; the ledger is always read
        ledger = await stage.ledger()
        checks += common_checks(stage)
        cpu = [
            f"replica {i} {s.cpu_s():.0f} s"
            for i, s in enumerate(stage.cluster.servers)
            if stage.cluster.alive(i)
        ]
        cpu.append(f"this bench {time.process_time() - cpu0:.0f} s")
        checks.append(Check("CPU used (replicas since their last start)", ", ".join(cpu)))
        if not ledger.clean or any(c.failed for c in checks):
            print(stage.cluster.log_tails(), file=sys.stderr)
        if logs is not None:
            logs.mkdir(parents=True, exist_ok=True)
            for server in stage.cluster.servers:
                shutil.copy(server.log_path, logs / f"{scenario.name}-{server.log_path.name}")
    windows = ", ".join(f"{clock_time(a)}–{clock_time(b)}" for a, b in stage.faults)
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    header = (
        f"load average {load} (other work on the machine slows timers and answers); "
        f"{replicas} replica(s), {guards} guards, {len(stage.record.incidents)} incidents "
        f"({args.rate:g}/s), "
        f"settled in {settle_s:.0f} s, {time.monotonic() - started:.0f} s in all; "
        f"faults (UTC) {windows}"
    )
    print_table(scenario, ledger, checks, header)
    return ledger.clean and not any(c.failed for c in checks)


async def main_async(args: argparse.Namespace) -> int:
    raise_nofile(4096)
    chosen = [s for s in SCENARIOS if args.scenario in (None, s.name)]
    cluster = postgres.cluster_of(PG_URL)
    started = time.monotonic()
    print(machine_line())
    print(f"PostgreSQL cluster {'/'.join(cluster)} ({PG_URL.rpartition('@')[2]})")
    results: dict[str, str] = {}
    try:
        for scenario in chosen:
            try:
                ok = await run_one(scenario, args)
                results[scenario.name] = "clean" if ok else "NOT clean"
            except Exception:
                traceback.print_exc()
                results[scenario.name] = "ERROR (see above)"
            await postgres.ensure_up(cluster)
    finally:
        await postgres.ensure_up(cluster)
    print("\nsummary: " + ", ".join(f"{name} {verdict}" for name, verdict in results.items()))
    print(f"wall time {time.monotonic() - started:.0f} s")
    return 0 if all(v == "clean" for v in results.values()) else 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=[s.name for s in SCENARIOS])
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--guards", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=1.0, help="scales every phase")
    parser.add_argument("--rate", type=float, default=3.0, help="incidents posted per second")
    parser.add_argument("--logs", type=Path, help="copy each replica's log into this folder")
    args = parser.parse_args()
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
