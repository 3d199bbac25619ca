"""The field side in the console: the intel queue (a guard reports, an operator triages,
the guard hears back) and area broadcasts (drawn from the map, counted as guards get and
acknowledge them), in English and Chinese, only for the roles that may."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.browser.console_page import ConsolePage, open_console
from tests.harness import Harness
from tests.phones import guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")

# Hexi district, south of the other browser tests' scenes and inside the demo precincts.
SCENE = (39.1050, 117.2150)
WAIT_MS = 15_000


async def report_intel(phone, where, subject: str, description: str) -> str:  # type: ignore[no-untyped-def]
    await phone.send(
        {"type": "report", "kind": "intel", "subject": subject, "description": description,
         "lat": where[0], "lon": where[1]}
    )  # fmt: skip
    accepted = await phone.expect("report.accepted", kind="intel")
    return str(accepted["intel_id"])


async def overlay(console: ConsolePage, script: str) -> object:
    return await console.page.evaluate(f"(({script}))(window.dispatchConsole.overlays)")


async def test_operator_triages_intel_and_the_guard_hears_back(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    where = offset(SCENE, north_m=120)
    phone = await guard_at(city, where)
    try:
        first = await report_intel(
            phone, where, "suspicious_vehicle", "white van without plates by the loading bay"
        )
        async with open_console(browser, city, artifacts, "intel") as console:
            await console.sign_in()
            page = console.page
            tab = page.get_by_role("tab", name="Intel")
            await expect(tab).to_be_visible()
            await page.keyboard.press("2")
            await expect(tab).to_have_attribute("aria-selected", "true")
            panel = console.region("Intel queue")
            row = panel.locator(f"#intel-{first}")
            await expect(row).to_contain_text("Suspicious vehicle")
            await expect(row).to_contain_text("white van without plates")
            await expect(row).to_contain_text("New")
            await expect(page.locator("#intel-new")).not_to_have_text("0")
            # Live: a second report appears without a reload.
            second = await report_intel(
                phone, where, "hazard", "loose manhole cover at the bus stop"
            )
            await expect(panel.locator(f"#intel-{second}")).to_contain_text("Hazard")
            await console.screenshot("queue")

            await row.click()
            await row.get_by_role("button", name="Useful", exact=True).click()
            note = row.get_by_label("Useful — note for the guard")
            await expect(note).to_be_focused()
            await row.get_by_role("button", name="Send verdict").click()  # no note: 422
            error = row.locator(".field-error")
            await expect(error).to_contain_text("note")
            await expect(note).to_have_attribute("aria-invalid", "true")
            await console.screenshot("triage")
            await note.fill("Plate traced; a patrol car is on its way")
            await expect(error).to_be_hidden()
            await row.get_by_role("button", name="Send verdict").click()
            feedback = await phone.expect("intel.feedback", intel_id=first)
            assert (feedback["state"], feedback["note"]) == (
                "useful",
                "Plate traced; a patrol car is on its way",
            )
            await expect(row).to_have_count(0)  # no longer new
            await panel.get_by_label("State").select_option("useful")
            await expect(panel.locator(f"#intel-{first}")).to_contain_text("Police note: Plate")

            # Keyboard: j selects, x starts "not useful" with the note focused.
            await panel.get_by_label("State").select_option("new")
            await expect(panel.locator(f"#intel-{first}")).to_have_count(0)
            await expect(panel.locator(f"#intel-{second}")).to_be_visible()
            await panel.locator(".intel-list").focus()
            for _ in range(await panel.locator(".intel-row").count()):  # other tests' reports
                await page.keyboard.press("j")
                if await panel.locator(f"#intel-{second}").get_attribute("aria-selected") == "true":
                    break
            await expect(panel.locator(f"#intel-{second}")).to_have_attribute(
                "aria-selected", "true"
            )
            await page.keyboard.press("x")
            await page.keyboard.type("Known to us, a council repair is booked")
            await page.get_by_role("button", name="Send verdict").click()
            feedback = await phone.expect("intel.feedback", intel_id=second)
            assert (feedback["state"], feedback["note"]) == (
                "not_useful",
                "Known to us, a council repair is booked",
            )

            await page.get_by_role("button", name="中文").click()
            await expect(page.get_by_role("tab", name="情报")).to_be_visible()
            panel = console.region("情报队列")
            await panel.get_by_label("状态").select_option("all")
            await expect(panel.locator(f"#intel-{second}")).to_contain_text("无价值")
            await console.screenshot("zh")
            await page.get_by_role("button", name="English").click()
    finally:
        await phone.close()


async def test_a_supervisor_reads_intel_without_triage_and_a_manager_sees_neither(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    where = offset(SCENE, east_m=-250)
    company = await city.make_company()
    phone = await guard_at(city, where, company["id"])
    supervisor = await city.user("supervisor")
    manager = await city.user("company_manager", company_id=company["id"])
    try:
        intel_id = await report_intel(phone, where, "other", "crowd gathering, calm for now")
        async with open_console(browser, city, artifacts, "intel-supervisor") as console:
            await console.sign_in(supervisor, "correct-horse-battery")
            await console.page.get_by_role("tab", name="Intel").click()
            row = console.page.locator(f"#intel-{intel_id}")
            await row.click()
            await expect(row).to_have_attribute("aria-selected", "true")
            await expect(row.get_by_role("button")).to_have_count(0)
            await console.page.get_by_role("tab", name="Broadcasts").click()
            await expect(console.page.locator("#broadcast-new")).to_be_hidden()
        async with open_console(browser, city, artifacts, "intel-manager") as console:
            await console.sign_in(manager, "correct-horse-battery")
            await expect(console.page.get_by_role("tablist")).to_be_hidden()
            await console.page.keyboard.press("2")
            await expect(console.page.locator("#intel-panel")).to_be_hidden()
    finally:
        await phone.close()


async def test_broadcast_from_the_map_reaches_the_guards_inside_and_is_counted(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    centre = offset(SCENE, north_m=-1500)
    inside = await guard_at(city, offset(centre, east_m=300))
    outside = await guard_at(city, offset(centre, east_m=3000))
    try:
        async with open_console(browser, city, artifacts, "broadcast") as console:
            await console.sign_in()
            page = console.page
            await page.keyboard.press("3")
            await expect(page.get_by_role("tab", name="Broadcasts")).to_have_attribute(
                "aria-selected", "true"
            )
            await console.click_map_at(*centre)
            dialog = page.get_by_role("dialog", name="New area broadcast")
            await expect(dialog).to_be_visible()
            radius = dialog.get_by_label("Radius (metres)")
            minutes = dialog.get_by_label("Expires in (minutes)")
            text = "Missing child: boy, 6, red jacket, last seen at the metro exit"
            await dialog.get_by_label("Message to the guards").fill(text)
            await radius.fill("0")
            await dialog.get_by_role("button", name="Send broadcast").click()
            await expect(page.locator("#broadcast-error-radius")).to_contain_text("radius_m")
            await expect(radius).to_have_attribute("aria-invalid", "true")
            await radius.fill("1000")
            await minutes.fill("6000")  # past the 72 h limit
            await dialog.get_by_role("button", name="Send broadcast").click()
            await expect(page.locator("#broadcast-error-minutes")).to_contain_text("expires_at")
            await expect(page.locator("#broadcast-error-radius")).to_be_hidden()
            await console.screenshot("dialog-error")
            await minutes.fill("90")
            await dialog.get_by_role("button", name="Send broadcast").click()
            await expect(dialog).to_be_hidden()

            frame = await inside.expect("instruction")
            assert frame["text"] == text and frame["incident_id"] is None
            await outside.quiet("instruction", within=1.0)
            row = page.locator(f"#bc-{frame['broadcast_id']}")
            await expect(row).to_contain_text(text)
            await expect(row).to_have_attribute("aria-selected", "true")
            assert await overlay(console, "(o) => o.broadcastIds") == [frame["broadcast_id"]]
            await inside.ack(frame["seq"])
            await expect(row).to_contain_text(
                "Guards 1 · delivered 1 · acknowledged 1", timeout=WAIT_MS
            )
            await console.screenshot("list")
            # Keyboard: n opens the dialog at the map's centre, Esc closes it.
            await page.keyboard.press("n")
            await expect(dialog).to_be_visible()
            await page.keyboard.press("Escape")
            await expect(dialog).to_be_hidden()
            # Back to the incidents. (In two CI runs the "1" key right after this Escape was
            # ignored, though never in a run here; the tab keys are tested in the intel
            # test, so this one clicks.)
            await page.get_by_role("tab", name="Incidents").click()
            await expect(page.get_by_role("region", name="Incident detail")).to_be_visible()
    finally:
        await inside.close()
        await outside.close()
