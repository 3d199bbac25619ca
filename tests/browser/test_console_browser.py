"""An operator's shift in a real browser: sign in, see guards, create, watch a guard
accept, escalate, resolve — in English and Chinese, with nothing loaded from outside."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.console_page import ConsolePage, open_console
from tests.harness import Harness
from tests.phones import guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")

# Heping district, Tianjin: inside the demo city's precincts.
SCENE = (39.1210, 117.2010)


async def guards_on_map(console: ConsolePage) -> int:
    return int(await console.map_call("(m) => m.guardCount()"))


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.1)


async def test_operator_signs_in_and_sees_the_city(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    phone = await guard_at(city, offset(SCENE, north_m=400))
    try:
        async with open_console(browser, city, artifacts, "overview") as console:
            await console.sign_in()
            for region in ("Map", "Incident queue", "Incident detail"):
                await expect(console.region(region)).to_be_visible()
            await expect(console.page.locator(".precinct-label").first).to_be_visible()
            await expect(console.page.locator(".unit-icon").first).to_be_visible()
            # The demo's 200 guards (stale: their phones are not connected) and ours.
            await wait_for(lambda: _more_than(console, 200))
            state = await console.map_call(
                "(m, id) => m.guardMarkers.get(id).options.state", phone.id
            )
            assert state == "available"
            stale = await console.map_call(
                "(m) => [...m.guardMarkers.values()].filter(g => g.options.state === 'available')"
                ".length"
            )
            assert stale == 1, "a guard without a live phone must not show as available"
            await console.screenshot("signed-in")
    finally:
        await phone.close()


async def _shows(console: ConsolePage, guard_id: str) -> bool:
    return bool(await console.map_call("(m, id) => m.guardMarkers.has(id)", guard_id))


async def _more_than(console: ConsolePage, n: int) -> bool:
    return await guards_on_map(console) > n


async def test_a_shift_create_on_the_map_guard_accepts_escalate_resolve(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    scene = offset(SCENE, east_m=900)
    phone = await guard_at(city, offset(scene, north_m=60))
    try:
        async with open_console(browser, city, artifacts, "shift") as console:
            await console.sign_in()
            await console.click_map_at(*scene)
            dialog = console.page.get_by_role("dialog", name="New incident")
            await expect(dialog).to_be_visible()
            # The API's own validation error lands next to the field it names.
            await dialog.get_by_role("button", name="Create incident").click()
            await expect(dialog.locator("#create-error-description")).to_contain_text("description")
            await expect(dialog.get_by_label("Description")).to_have_attribute(
                "aria-invalid", "true"
            )
            await dialog.get_by_label("Category").select_option("medical")
            await dialog.get_by_label("Priority").select_option("2")
            await dialog.get_by_label("Description").fill("elderly man collapsed at the east gate")
            await dialog.get_by_label("Address").fill("Nanjing Road 100, east gate")
            await dialog.get_by_role("button", name="Create incident").click()
            await expect(dialog).to_be_hidden()

            detail = console.region("Incident detail")
            await expect(detail).to_contain_text("elderly man collapsed")
            await expect(detail.locator(".countdown").first).to_contain_text("expires in")
            queue = console.region("Incident queue")
            await expect(
                queue.get_by_role("listbox").get_by_role("option").filter(has_text="Nanjing Road")
            ).to_be_visible()
            await console.screenshot("offered")

            # The guard's phone accepts; the console follows without a reload.
            offer = await phone.expect("offer")
            await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
            assignment = await phone.expect("assignment")
            await expect(detail.locator(".detail-head .status")).to_have_text("Assigned")
            await phone.send(
                {
                    "type": "assignment.status",
                    "assignment_id": assignment["assignment_id"],
                    "status": "on_scene",
                }
            )
            await expect(detail.locator(".detail-head .status")).to_have_text("On scene")
            timeline = detail.locator(".timeline")
            await expect(timeline).to_contain_text("offer.accepted")
            await expect(timeline).to_contain_text("assignment.on_scene")

            await detail.get_by_role("button", name="Escalate to police").click()
            await expect(detail.locator(".escalations")).to_contain_text("Police Station")
            await expect(timeline).to_contain_text("escalation.sent")
            await console.screenshot("escalated")

            await detail.get_by_role("button", name="Resolve").click()
            await expect(detail.locator(".detail-head .status")).to_have_text("Resolved")
            await expect(detail.get_by_role("button", name="Close")).to_be_visible()
            await console.screenshot("resolved")
    finally:
        await phone.close()


async def test_keyboard_moves_through_the_queue_and_assigns(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    # Away from the other tests' incidents, and medical: this guard has no first aid, so no
    # wave offers it either incident and it stays free for the operator's override.
    scene = offset(SCENE, north_m=-1500, east_m=12_000)
    first = await city.make_incident(
        scene, priority=1, category="medical", description="smoke, 3F, a man down"
    )
    await city.make_incident(scene, priority=4, category="medical", description="graffiti")
    phone = await guard_at(city, offset(scene, east_m=80), skills=[])
    try:
        async with open_console(browser, city, artifacts, "keyboard") as console:
            await console.sign_in()
            queue = console.region("Incident queue")
            await expect(queue.get_by_role("listbox").get_by_role("option").first).to_be_visible()
            await console.page.keyboard.press("j")
            selected = queue.locator("[aria-selected=true]")
            await expect(selected).to_have_attribute("data-id", first["id"])  # P1 first
            await console.page.keyboard.press("Enter")
            detail = console.region("Incident detail")
            await expect(detail).to_contain_text("smoke, 3F")
            await phone.quiet("offer")
            await console.page.keyboard.press("a")
            pick = detail.locator(f"button[data-guard='{phone.id}']")
            await expect(pick).to_be_visible()
            await expect(detail.locator(".nearby")).to_contain_text(re.compile(r"\d+ m"))
            await pick.click()
            await phone.expect("assignment")
            await expect(detail.locator(".detail-head .status")).to_have_text("Assigned")
            await console.page.keyboard.press("Escape")
            await expect(detail).to_contain_text("Select an incident")
            await console.page.keyboard.press("n")
            await expect(console.page.get_by_role("dialog", name="New incident")).to_be_visible()
            await console.page.keyboard.press("Escape")
    finally:
        await phone.close()


async def test_banner_while_the_stream_is_down_and_the_screen_catches_up(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    async with open_console(browser, city, artifacts, "reconnect") as console:
        blocked = True
        live: list[object] = []

        async def events_route(route) -> None:  # type: ignore[no-untyped-def]
            if blocked and live:
                await route.close(code=1011, reason="network down")
                return
            live.append(route)
            route.connect_to_server()

        await console.page.route_web_socket(re.compile(r"/ws/events"), events_route)
        await console.sign_in()
        banner = console.page.get_by_role("alert").filter(has_text="Live updates lost")
        await expect(banner).to_be_hidden()

        await live[-1].close(code=4000, reason="cut")
        await expect(banner).to_be_visible()
        await expect(console.page.locator("#live")).to_have_attribute("data-state", "off")
        missed = await city.make_incident(
            offset(SCENE, north_m=2500), priority=3, description="missed while offline"
        )
        await console.screenshot("disconnected")
        queue = console.region("Incident queue")
        await expect(queue).not_to_contain_text("missed while offline")

        blocked = False
        await expect(banner).to_be_hidden(timeout=15_000)
        await expect(queue.locator(f"[data-id='{missed['id']}']")).to_be_visible()
        console.errors.clear()  # the refused reconnects are logged by the browser


async def test_the_chinese_console(browser: Browser, city: Harness, artifacts: Path) -> None:
    await city.make_incident(
        offset(SCENE, north_m=-600), priority=2, category="theft", description="电动车被盗"
    )
    async with open_console(browser, city, artifacts, "zh", locale="zh-CN") as console:
        await console.sign_in(zh=True)
        for region in ("地图", "事件队列", "事件详情"):
            await expect(console.region(region)).to_be_visible()
        queue = console.region("事件队列")
        await expect(
            queue.get_by_role("listbox").get_by_role("option").filter(has_text="盗窃").first
        ).to_be_visible()
        await (
            queue.get_by_role("listbox").get_by_role("option").filter(has_text="盗窃").first.click()
        )
        await expect(console.region("事件详情")).to_contain_text("时间线")
        await expect(console.region("事件详情").locator(".detail-tiers")).to_contain_text(
            "观察报告"
        )
        await expect(console.page.locator("#clock")).to_contain_text("Asia/Shanghai")
        await console.screenshot("signed-in")
        await console.page.get_by_role("button", name="Switch to English").click()
        await expect(console.region("Incident queue")).to_be_visible()


async def test_session_expiry_asks_to_sign_in_again_and_keeps_the_screen(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    incident = await city.make_incident(offset(SCENE, east_m=-700), description="expiry check")
    async with open_console(browser, city, artifacts, "expiry", fake_clock=True) as console:
        await console.sign_in()
        queue = console.region("Incident queue")
        await queue.locator(f"[data-id='{incident['id']}']").click()
        detail = console.region("Incident detail")
        await expect(detail).to_contain_text("expiry check")
        await console.page.clock.fast_forward(16 * 60 * 1000)  # past the 15 min token
        await console.page.get_by_role("button", name="Resolve").click()
        dialog = console.page.get_by_role("dialog", name="Sign in to the dispatch console")
        await expect(dialog).to_be_visible()
        await expect(dialog).to_contain_text("session has expired")
        await dialog.get_by_label("Password").fill("demo-operator-pass")
        await dialog.get_by_role("button", name="Sign in").click()
        await expect(dialog).to_be_hidden()
        await expect(detail).to_contain_text("expiry check")
        await expect(detail.locator(".detail-head .status")).to_have_text("Resolved")


async def test_wall_screen(browser: Browser, city: Harness, artifacts: Path) -> None:
    async with open_console(browser, city, artifacts, "wall", viewport=(2560, 1440)) as console:
        await console.sign_in()
        await expect(console.region("Map")).to_be_visible()
        box = await console.region("Incident queue").bounding_box()
        assert box is not None and box["width"] >= 560
        await console.screenshot("signed-in")


async def test_each_role_sees_only_what_it_may_do(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    incident = await city.make_incident(offset(SCENE, north_m=-900), description="roles check")
    company = await city.make_company()
    own = await guard_at(city, offset(SCENE, east_m=-300), company["id"])
    other = await guard_at(city, offset(SCENE, east_m=-350))
    supervisor = await city.user("supervisor")
    manager = await city.user("company_manager", company_id=company["id"])
    try:
        async with open_console(browser, city, artifacts, "supervisor") as console:
            await console.sign_in(supervisor, "correct-horse-battery")
            await console.region("Incident queue").locator(f"[data-id='{incident['id']}']").click()
            detail = console.region("Incident detail")
            await expect(detail).to_contain_text("roles check")
            await expect(detail.locator(".timeline")).to_contain_text("incident.created")
            await expect(detail.get_by_role("button")).to_have_count(0)  # read-only
        async with open_console(browser, city, artifacts, "manager") as console:
            await console.sign_in(manager, "correct-horse-battery")
            await wait_for(lambda: _shows(console, own.id))
            await console.page.wait_for_timeout(1500)  # a feed tick: nobody else arrives
            assert await guards_on_map(console) == 1
            assert not await console.map_call("(m, id) => m.guardMarkers.has(id)", other.id)
            await expect(console.page.locator(".unit-icon")).to_have_count(0)
            await expect(console.region("Incident queue")).to_contain_text("0 incidents")
            await console.screenshot("signed-in")
    finally:
        await own.close()
        await other.close()


async def test_withdraw_an_offer_and_instruct_a_guard(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    # West of the city, where no other test's incident can be offered to these guards.
    scene = offset(SCENE, north_m=3000, east_m=-15_000)
    offered = await guard_at(city, offset(scene, north_m=50))
    working = await guard_at(city, offset(scene, north_m=-8000))
    try:
        incident = await city.make_incident(scene, priority=3, description="withdraw check")
        offer = await offered.expect("offer")
        assert offer["incident"]["id"] == incident["id"]
        job = await city.make_incident(
            offset(scene, north_m=-8000), priority=4, description="instruction check"
        )
        response = await city.post(
            f"/api/v1/incidents/{job['id']}/assign", {"guard_id": working.id}, role="operator"
        )
        assert response.status_code == 201, response.text
        async with open_console(browser, city, artifacts, "withdraw") as console:
            await console.sign_in()
            queue = console.region("Incident queue")
            detail = console.region("Incident detail")
            await queue.locator(f"[data-id='{incident['id']}']").click()
            row = detail.locator(f"tr[data-offer='{offer['offer_id']}']")
            await row.get_by_role("button", name="Withdraw").click()
            withdrawn = await offered.expect("offer.withdrawn", offer_id=offer["offer_id"])
            assert withdrawn["reason"] == "operator"
            await expect(row).to_contain_text("Withdrawn")

            await queue.locator(f"[data-id='{job['id']}']").click()
            await expect(detail).to_contain_text("instruction check")
            await detail.get_by_label("Send instruction").fill("Keep people away from the door")
            await detail.get_by_role("button", name="Send instruction").click()
            instruction = await working.expect("instruction")
            assert instruction["text"] == "Keep people away from the door"
            await expect(detail.locator(".timeline")).to_contain_text("incident.instruction")
    finally:
        await offered.close()
        await working.close()


async def test_detail_shows_what_guards_may_do(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    # East of the city, away from other tests' guards and incidents.
    scene = offset(SCENE, north_m=-3000, east_m=15_000)
    theft = await city.make_incident(scene, priority=2, category="theft", description="tiers check")
    robbery = await city.make_incident(
        offset(scene, north_m=200), priority=1, category="robbery", description="armed robbery"
    )
    async with open_console(browser, city, artifacts, "tiers") as console:
        await console.sign_in()
        queue = console.region("Incident queue")
        tiers = console.region("Incident detail").locator(".detail-tiers")
        await queue.locator(f"[data-id='{theft['id']}']").click()
        await expect(tiers).to_contain_text("Guards may:")
        for label in ("Observe and report", "Secure the scene", "Hold until police arrive"):
            await expect(tiers).to_contain_text(label)
        await expect(tiers).to_have_attribute("title", re.compile("art. 84"))
        await console.screenshot("theft")
        await queue.locator(f"[data-id='{robbery['id']}']").click()
        await expect(tiers.locator(".tier")).to_have_text(["Observe and report"])
        await console.screenshot("robbery")


async def test_a_drill_wears_a_drill_badge_in_the_queue_and_the_detail(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    # South-east of the city, away from other tests' guards and incidents.
    scene = offset(SCENE, north_m=-6000, east_m=18_000)
    drill = await city.make_incident(
        scene, priority=2, category="fire", description="fire drill", exercise=True
    )
    real = await city.make_incident(
        offset(scene, north_m=200), priority=2, category="fire", description="real fire"
    )
    async with open_console(browser, city, artifacts, "drill") as console:
        await console.sign_in()
        queue = console.region("Incident queue")
        detail_badge = console.region("Incident detail").locator(".detail-head .badge.drill")
        drill_row = queue.locator(f"[data-id='{drill['id']}']")
        await expect(drill_row.locator(".badge.drill")).to_have_text("DRILL")
        await expect(queue.locator(f"[data-id='{real['id']}'] .badge.drill")).to_have_count(0)
        await drill_row.click()
        await expect(detail_badge).to_have_text("DRILL")
        await expect(detail_badge).to_have_attribute("title", re.compile("not a real incident"))
        await console.screenshot("drill")
        await queue.locator(f"[data-id='{real['id']}']").click()
        await expect(console.region("Incident detail")).to_contain_text("real fire")
        await expect(detail_badge).to_have_count(0)
        await console.page.get_by_role("button", name="切换到中文").click()
        zh_row = console.region("事件队列").locator(f"[data-id='{drill['id']}']")
        await expect(zh_row.locator(".badge.drill")).to_have_text("演练")
        await expect(zh_row.locator(".badge.drill")).to_have_attribute("title", "演练：非真实警情")
        await console.screenshot("drill-zh")
