"""Is the console's map smooth with thousands of guards moving? Frame times in a real browser.

    .venv/bin/python -m bench.console_map [--db sqlite|postgres] [--guards 5000]
        [--seconds 20]

The server runs as its own process on a fresh database; --guards guards connect from two
load processes, go on duty and ping every 5 s (±20 %) across a 40 km box around Tianjin.
Headless Chromium (Debian's, /usr/bin/chromium; software rendering, no GPU) opens
/console at 1366×768 as an admin, and over a --seconds window the page records the gap
between animation frames, the time each batch of guard updates takes to apply
(`flushGuards`), and long tasks (> 50 ms). A steady 60 fps is a 16.7 ms gap.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time
from typing import Any

from playwright.async_api import async_playwright

from bench.common import (
    admin_client,
    machine_line,
    raise_nofile,
    random_point,
    running_server,
    seed_guards,
)
from bench.dispatch_latency import pinging_fleets

CHROMIUM = "/usr/bin/chromium"
PING_INTERVAL_S = 5.0

# Runs in the page: wrap the map's batch apply, watch frames and long tasks for `ms`.
MEASURE = """async (ms) => {
  const map = window.dispatchConsole.map;
  const flushes = [];
  const original = map.flushGuards.bind(map);
  map.flushGuards = () => {
    const t0 = performance.now();
    const n = map.pending.size;
    original();
    flushes.push([performance.now() - t0, n]);
  };
  const draws = [];
  const canvas = map.guardCanvas;
  const redraw = canvas._redraw.bind(canvas);
  canvas._redraw = () => {
    const t0 = performance.now();
    redraw();
    draws.push(performance.now() - t0);
  };
  const longTasks = [];
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) longTasks.push(entry.duration);
  });
  observer.observe({ type: "longtask", buffered: false });
  const gaps = [];
  let last = performance.now();
  const end = last + ms;
  await new Promise((done) => {
    const frame = (now) => {
      gaps.push(now - last);
      last = now;
      if (now < end) requestAnimationFrame(frame);
      else done();
    };
    requestAnimationFrame(frame);
  });
  observer.disconnect();
  return { gaps, flushes, draws, longTasks, guards: map.guardCount(),
           heapMb: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : null };
}"""


def hot_functions(profile: dict[str, Any], top: int = 8) -> list[tuple[str, float]]:
    """The page's functions by self time (ms) in a CDP CPU profile."""
    interval_ms: dict[int, float] = {}
    deltas = profile.get("timeDeltas", [])
    for node_id, delta in zip(profile.get("samples", []), deltas, strict=False):
        interval_ms[node_id] = interval_ms.get(node_id, 0.0) + delta / 1000
    by_name: dict[str, float] = {}
    for node in profile["nodes"]:
        frame = node["callFrame"]
        where = frame["url"].rsplit("/", 1)[-1]
        name = f"{frame['functionName'] or '(anonymous)'} {where}:{frame['lineNumber'] + 1}"
        by_name[name] = by_name.get(name, 0.0) + interval_ms.get(node["id"], 0.0)
    return sorted(by_name.items(), key=lambda kv: -kv[1])[:top]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def measure_page(base_url: str, token: str, guards: int, seconds: float) -> dict[str, Any]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        context = await browser.new_context(viewport={"width": 1366, "height": 768})
        expires = int((time.time() + 3600) * 1000)
        await context.add_init_script(
            f"sessionStorage.setItem('console.token', {token!r});"
            f"sessionStorage.setItem('console.expires_at', '{expires}');"
        )
        page = await context.new_page()
        await page.goto(f"{base_url}/console")
        # The whole 40 km box in view (the bench city has no precincts to fit the map to).
        for _ in range(100):
            if await page.evaluate("() => Boolean(window.dispatchConsole)"):
                break
            await asyncio.sleep(0.2)
        await page.evaluate("() => { window.dispatchConsole.map.map.setZoom(11); }")
        shown = 0
        for _ in range(240):
            shown = await page.evaluate(
                "() => window.dispatchConsole ? window.dispatchConsole.map.guardCount() : 0"
            )
            if shown >= guards * 0.9:
                break
            await asyncio.sleep(0.5)
        else:
            bbox = await page.evaluate("() => window.dispatchConsole.map.bbox()")
            raise RuntimeError(f"only {shown} of {guards} guards reached the map (view {bbox})")
        await page.wait_for_timeout(2000)
        cdp = await context.new_cdp_session(page)
        await cdp.send("Profiler.enable")
        await cdp.send("Profiler.start")
        result: dict[str, Any] = await page.evaluate(MEASURE, seconds * 1000)
        profile = (await cdp.send("Profiler.stop"))["profile"]
        result["hot"] = hot_functions(profile)
        await browser.close()
    return result


async def run(db: str, guards: int, seconds: float) -> None:
    raise_nofile(2 * guards + 1000)
    async with running_server(db) as server:
        seeded = await asyncio.to_thread(seed_guards, server, guards)
        rng = random.Random(guards)
        specs = [(s.guard_id, s.token, *random_point(rng)) for s in seeded]
        async with pinging_fleets(server.ws_url, specs, 2, PING_INTERVAL_S) as stop:
            client = await admin_client(server)
            token = client.headers["Authorization"].split(" ", 1)[1]
            await client.aclose()
            result = await measure_page(server.base_url, token, guards, seconds)
            await stop()
    report(db, guards, seconds, result)


def report(db: str, guards: int, seconds: float, result: dict[str, Any]) -> None:
    gaps = result["gaps"]
    flushes = [ms for ms, _ in result["flushes"]]
    batch = [n for _, n in result["flushes"]]
    fps = len(gaps) / seconds
    print(
        f"\nconsole map, {db}, {guards:,} guards pinging every {PING_INTERVAL_S:.0f} s, "
        f"{result['guards']:,} on the map, {seconds:.0f} s window, 1366×768 headless Chromium"
    )
    print(
        f"  frames: {fps:.1f} fps; gap p50 {percentile(gaps, 0.5):.1f} ms, "
        f"p99 {percentile(gaps, 0.99):.1f} ms, max {max(gaps):.1f} ms"
    )
    if flushes:
        print(
            f"  guard batches applied: {len(flushes)} ({statistics_line(batch)} guards each); "
            f"apply p50 {percentile(flushes, 0.5):.1f} ms, p99 {percentile(flushes, 0.99):.1f} ms"
        )
    draws = result["draws"]
    if draws:
        print(
            f"  canvas redraws: {len(draws)}; p50 {percentile(draws, 0.5):.1f} ms, "
            f"p99 {percentile(draws, 0.99):.1f} ms"
        )
    long_tasks = result["longTasks"]
    hot = ", ".join(f"{name} {ms:.0f} ms" for name, ms in result.get("hot", []))
    print(f"  busiest in the page over the window (self time): {hot}")
    print(
        f"  long tasks (> 50 ms): {len(long_tasks)}"
        + (f", longest {max(long_tasks):.0f} ms" if long_tasks else "")
        + (f"; JS heap {result['heapMb']:.0f} MiB" if result["heapMb"] else "")
    )


def statistics_line(values: list[int]) -> str:
    return f"median {percentile([float(v) for v in values], 0.5):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--guards", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(machine_line())
    print(f"started {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC")
    asyncio.run(run(args.db, args.guards, args.seconds))


if __name__ == "__main__":
    main()
