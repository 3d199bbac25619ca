"""The Reports view in a real browser: a supervisor reads the response report (table,
day-by-day and distribution charts drawn as inline SVG, a CSV download), the regulator's
view of the companies with its licence and certificate warnings, and a guard's record with
points and a leaderboard — in English and Chinese. A company manager sees their own company
only; an operator has no Reports view."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect

from app.ids import new_id
from app.models import Assignment, Escalation, Guard, Incident, Offer
from tests.browser.console_page import ConsolePage, open_console
from tests.harness import Harness
from tests.phones import guard_at, offset

pytestmark = pytest.mark.usefixtures("backend")

# Heping district, Tianjin: inside a demo precinct, north of the other tests' scenes.
SCENE = (39.1290, 117.1960)
LOCAL = dt.timedelta(hours=8)  # Asia/Shanghai, the harness's DISPATCH_TIMEZONE
CSV_HEADER = (
    "key,name,incidents,offers,accepted,declines,expiries,acceptance_rate,accept_s_p50,"
    "accept_s_p90,on_scene_s_p50,on_scene_s_p90,early_disposals,minutes_gained_p50,"
    "minutes_gained_total,escalations,handovers"
)


def local_today(city: Harness) -> dt.date:
    return (city.now() + LOCAL).date()


async def live_incident(city: Harness, company_id: str) -> dict[str, Any]:
    """One incident the whole way through the real API: offered to a guard's phone, accepted
    after 20 s, on scene 2 min 5 s after the report, police there 6 min later, handed over."""
    today = local_today(city)
    phone = await guard_at(
        city, offset(SCENE, north_m=80), company_id,
        name="Wang Fang", certificate_expires_on=(today + dt.timedelta(days=20)).isoformat(),
    )  # fmt: skip
    try:
        incident = await city.make_incident(
            SCENE, priority=3, description="shop window smashed, two men running east"
        )
        offer = await phone.expect("offer")
        city.clock.advance(20)
        await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
        assignment = await phone.expect("assignment")
        city.clock.advance(105)
        await phone.locate(*SCENE)
        await phone.send(
            {"type": "assignment.status", "assignment_id": assignment["assignment_id"],
             "status": "on_scene"}
        )  # fmt: skip
        await phone.sync()
        base = f"/api/v1/incidents/{incident['id']}"
        assert (await city.get(base)).json()["status"] == "on_scene"
        station = {"station_id": incident["station_id"]}
        assert (await city.post(f"{base}/escalate", role="operator")).status_code in (200, 201)
        assert (await city.post(f"{base}/police/ack", station, role="operator")).status_code == 200
        city.clock.advance(360)
        for step in ("arrived", "handover"):
            response = await city.post(f"{base}/police/{step}", station, role="operator")
            assert response.status_code == 200, response.text
        return {"incident": incident, "guard_id": phone.id}
    finally:
        await phone.close()


async def backfill(city: Harness, company_id: str, station_id: str) -> list[str]:
    """Two more guards and a fortnight of resolved incidents, written straight into the
    tables so the day-by-day chart has a shape. Returns the new guards' ids."""
    now = city.now()
    guards = [new_id("grd"), new_id("grd")]
    rows: list[Any] = [
        Guard(
            id=gid,
            company_id=company_id,
            name=name,
            badge_no=f"B-{gid[-8:]}",
            skills=["first_aid"],
            certificate_expires_on=certificate,
            status="active",
            created_at=now - dt.timedelta(days=90),
            updated_at=now - dt.timedelta(days=90),
        )
        for gid, name, certificate in (
            (guards[0], "Li Na", local_today(city) + dt.timedelta(days=400)),
            (guards[1], "Zhao Lei", local_today(city) - dt.timedelta(days=3)),  # expired
        )
    ]
    # (days ago, guard, seconds to accept, seconds to scene, police minutes after the guard)
    timeline = [
        (13, 0, 15, 240, 6.0), (12, 1, 40, 420, None), (10, 0, 25, 180, 9.5),
        (10, 1, 70, 600, -2.0), (9, 0, 12, 150, None), (7, 1, 35, 330, 4.0),
        (6, 0, 18, 200, 12.0), (6, 0, 22, 260, None), (4, 1, 55, 540, 1.5),
        (3, 0, 10, 130, 7.0), (2, 1, 28, 310, None), (1, 0, 16, 170, 3.0),
    ]  # fmt: skip
    for days, who, accept_s, scene_s, police_min in timeline:
        created = now - dt.timedelta(days=days, hours=3 + days % 5)
        incident_id, offer_id = new_id("inc"), new_id("off")
        accepted = created + dt.timedelta(seconds=accept_s)
        on_scene = created + dt.timedelta(seconds=scene_s)
        resolved = on_scene + dt.timedelta(minutes=25)
        rows.append(
            Incident(
                id=incident_id,
                source="api",
                category="theft",
                priority=3,
                lat=SCENE[0],
                lon=SCENE[1],
                description="earlier incident",
                caller="user:backfill",
                required_guards=1,
                assigned_count=1,
                status="resolved",
                station_id=station_id,
                station_match="contains",
                unstaffed=False,
                created_by="user:backfill",
                created_at=created,
                updated_at=resolved,
                resolved_at=resolved,
                exercise=False,
            )
        )
        rows.append(
            Offer(
                id=offer_id,
                incident_id=incident_id,
                guard_id=guards[who],
                wave=1,
                rank=1,
                distance_m=400.0,
                eta_s=300.0,
                travel_mode="foot",
                offered_at=created,
                expires_at=created + dt.timedelta(seconds=30),
                outcome="accepted",
                responded_at=accepted,
            )
        )
        rows.append(
            Assignment(
                id=new_id("asg"),
                incident_id=incident_id,
                guard_id=guards[who],
                offer_id=offer_id,
                source="offer",
                status="cleared",
                assigned_at=accepted,
                on_scene_at=on_scene,
                cleared_at=resolved,
            )
        )
        if police_min is not None:
            police = on_scene + dt.timedelta(minutes=police_min)
            rows.append(
                Escalation(
                    id=new_id("esc"),
                    incident_id=incident_id,
                    station_id=station_id,
                    reason="operator",
                    status="police_on_scene",
                    outside_jurisdiction=False,
                    recommended_units=[],
                    created_at=created,
                    updated_at=police,
                    acknowledged_at=created,
                    police_on_scene_at=police,
                )
            )
    async with city.ctx.db.transaction() as session:
        for kind in (Guard, Incident, Offer, (Assignment, Escalation)):  # parents first
            session.add_all([r for r in rows if isinstance(r, kind)])
            await session.flush()
    return guards


@pytest.fixture(scope="module")
async def seeded(city: Harness) -> dict[str, Any]:
    night = await city.make_company(name="Harbour Night Watch")
    lapsed = await city.make_company(name="Old Gate Security")
    live = await live_incident(city, night["id"])
    station_id = live["incident"]["station_id"]
    li_na, zhao_lei = await backfill(city, night["id"], station_id)
    # Licences dated from today as the clock now stands (the incident moved it on).
    today = local_today(city)
    for company, days in ((night, 12), (lapsed, -5)):
        expires = (today + dt.timedelta(days=days)).isoformat()
        changed = await city.patch(
            f"/api/v1/companies/{company['id']}", {"licence_expires_on": expires}
        )
        assert changed.status_code == 200, changed.text
    # A supervisor commends the live incident's guard.
    commend = await city.post(
        f"/api/v1/incidents/{live['incident']['id']}/commendations",
        {"guard_id": live["guard_id"], "text": "Held the suspects' description until police came"},
        role="supervisor",
    )
    assert commend.status_code == 201, commend.text
    return {"night": night, "lapsed": lapsed, "guard_id": live["guard_id"], "li_na": li_na,
            "zhao_lei": zhao_lei, "station_id": station_id}  # fmt: skip


async def open_reports(console: ConsolePage) -> Page:
    page = console.page
    await page.get_by_role("button", name="Reports").click()
    await expect(page.get_by_role("region", name="Reports")).to_be_visible()
    await expect(page.get_by_role("region", name="Map")).to_be_hidden()
    return page


async def test_a_supervisor_reads_the_response_report_with_charts_and_csv(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    supervisor = await city.user("supervisor")
    async with open_console(browser, city, artifacts, "reports") as console:  # a laptop's 1366×768
        await console.sign_in(supervisor, "correct-horse-battery")
        page = await open_reports(console)
        await expect(page.get_by_role("tab", name="Response")).to_have_attribute(
            "aria-selected", "true"
        )
        panel = page.locator("#report-response")
        table = panel.locator("table.report-table")
        wang = table.locator("tbody tr", has=page.get_by_role("button", name="Wang Fang"))
        # 20 s to accept, 2 min 5 s to the scene, 6 min ahead of the police.
        await expect(wang.locator("td.accept_s_p50")).to_have_text("20s")
        await expect(wang.locator("td.on_scene_s_p50")).to_have_text("2m 05s")
        await expect(wang.locator("td.acceptance_rate")).to_have_text("100%")
        await expect(wang.locator("td.minutes_gained_total")).to_have_text("6 min")
        await expect(wang.locator("td.early_disposals")).to_have_text("1")
        await expect(table.locator("tbody tr")).to_have_count(3)
        await expect(table.locator("tfoot")).to_contain_text("All")
        await expect(table.locator("tfoot td.incidents")).to_have_text("13")
        # The date fields take the API's default period (the last 30 local days).
        today = local_today(city)
        await expect(page.get_by_label("To", exact=True)).to_have_value(today.isoformat())
        await expect(page.get_by_label("From", exact=True)).to_have_value(
            (today - dt.timedelta(days=29)).isoformat()
        )

        daily = panel.get_by_role("img", name=re.compile(r"^Day by day"))
        await expect(daily).to_be_visible()
        assert await daily.locator("rect.bar.incidents").count() == 30
        assert await daily.locator("path.line.on-scene").count() == 1
        await expect(daily).to_have_attribute("aria-label", re.compile(r"13 incidents"))
        histogram = panel.get_by_role("img", name=re.compile(r"^Time to scene"))
        await expect(histogram.locator("rect.bar.bucket")).to_have_count(10)
        await expect(histogram.locator("text.tick-label", has_text="2–3m")).to_be_visible()
        await console.screenshot("response")

        await panel.get_by_label("Measure").select_option("minutes_gained")
        histogram = panel.get_by_role("img", name=re.compile(r"^Minutes ahead of the police"))
        await expect(histogram.locator("rect.bar.bucket")).to_have_count(9)

        async with page.expect_download() as downloading:
            await panel.get_by_role("button", name="Download CSV").click()
        download = await downloading.value
        start = (today - dt.timedelta(days=29)).isoformat()
        assert download.suggested_filename == f"response-guard-{start}-{today.isoformat()}.csv"
        text = Path(await download.path()).read_text(encoding="utf-8")
        assert text.splitlines()[0] == CSV_HEADER
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["name"] for r in rows} == {"Wang Fang", "Li Na", "Zhao Lei"}
        token = await page.evaluate("sessionStorage.getItem('console.token')")
        assert token and not [url for url in console.requests if token in url]

        # By company, then down to the company's guards.
        await panel.get_by_label("Group by").select_option("company")
        night = table.get_by_role("button", name="Harbour Night Watch")
        await expect(night).to_be_visible()
        await night.click()
        await expect(panel.get_by_label("Group by")).to_have_value("guard")
        await expect(panel.locator("select[name=company_id]")).to_have_value(seeded["night"]["id"])
        await expect(table.get_by_role("button", name="Li Na")).to_be_visible()
        await page.get_by_role("button", name="中文").click()
        await expect(panel.get_by_role("img", name=re.compile(r"^逐日情况"))).to_be_visible()
        await expect(table.locator("thead")).to_contain_text("到场用时")
        await console.screenshot("response-zh")
        await page.get_by_role("button", name="English").click()

        # The blob: URL of the download is the page's own memory, not a request outside.
        console.requests[:] = [url for url in console.requests if not url.startswith("blob:")]


async def test_the_table_shows_the_90th_percentile_by_nearest_rank(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    # Li Na accepted in 10, 12, 15, 16, 18, 22 and 25 s and was on scene after 130, 150, 170,
    # 180, 200, 240 and 260 s: p90 is value ceil(0.9 × 7) = 7 of each, the largest.
    supervisor = await city.user("supervisor")
    async with open_console(browser, city, artifacts, "reports-p90") as console:
        await console.sign_in(supervisor, "correct-horse-battery")
        page = await open_reports(console)
        table = page.locator("#report-response table.report-table")
        li_na = table.locator("tbody tr", has=page.get_by_role("button", name="Li Na"))
        await expect(li_na.locator("td.accept_s_p50")).to_have_text("16s")
        await expect(li_na.locator("td.on_scene_s_p50")).to_have_text("3m 00s")
        await expect(li_na.locator("td.accept_s_p90")).to_have_text("25s")
        await expect(li_na.locator("td.on_scene_s_p90")).to_have_text("4m 20s")


async def test_a_period_is_sent_as_chosen_and_a_backwards_one_is_refused(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    supervisor = await city.user("supervisor")
    today = local_today(city)
    async with open_console(browser, city, artifacts, "reports-period") as console:
        await console.sign_in(supervisor, "correct-horse-battery")
        page = await open_reports(console)
        panel = page.locator("#report-response")
        await expect(page.get_by_label("To", exact=True)).to_have_value(today.isoformat())
        # The last week only: 6 of the backfilled incidents and the live one.
        week = (today - dt.timedelta(days=6)).isoformat()
        await page.get_by_label("From", exact=True).fill(week)
        await expect(panel.locator(".report-count")).to_contain_text(
            f"{week} to {today.isoformat()}"
        )
        daily = panel.get_by_role("img", name=re.compile(r"^Day by day"))
        assert await daily.locator("rect.bar.incidents").count() == 7
        # A period that ends before it starts: the API's refusal, naming the field.
        await page.get_by_label("To", exact=True).fill((today - dt.timedelta(days=10)).isoformat())
        await expect(page.get_by_role("alert").filter(has_text="from")).to_be_visible()


async def test_the_regulator_view_warns_of_licences_and_certificates(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    supervisor = await city.user("supervisor")
    async with open_console(
        browser, city, artifacts, "reports-companies", viewport=(1600, 1000)
    ) as console:
        await console.sign_in(supervisor, "correct-horse-battery")
        page = await open_reports(console)
        await page.keyboard.press("2")
        await expect(page.get_by_role("tab", name="Companies")).to_have_attribute(
            "aria-selected", "true"
        )
        panel = page.locator("#report-companies")
        warnings = panel.get_by_role("list")
        await expect(warnings.locator(".warning.expired").first).to_contain_text(
            "Old Gate Security: licence"
        )
        await expect(warnings).to_contain_text("expired 5 days ago")
        await expect(warnings).to_contain_text("Harbour Night Watch: licence")
        await expect(warnings).to_contain_text("expires in 12 days")
        await expect(warnings).to_contain_text(
            "Harbour Night Watch: 1 active guard works on an expired certificate"
        )
        await expect(warnings).to_contain_text(
            "Harbour Night Watch: 1 active guard's certificate expires"
        )
        night = panel.locator(f"tr[data-id='{seeded['night']['id']}']")
        await expect(night).to_have_class(re.compile("licence-expiring"))
        await expect(night.locator("td.licence")).to_contain_text("Expires in 12 days")
        lapsed = panel.locator(f"tr[data-id='{seeded['lapsed']['id']}']")
        await expect(lapsed).to_have_class(re.compile("licence-expired"))
        await expect(lapsed.locator("td.licence")).to_contain_text("Expired 5 days ago")
        await console.screenshot("companies")

        await page.get_by_role("button", name="中文").click()
        await expect(page.get_by_role("tab", name="保安公司")).to_have_attribute(
            "aria-selected", "true"
        )
        await expect(warnings).to_contain_text("已过期 5 天")
        await console.screenshot("companies-zh")
        await page.get_by_role("button", name="English").click()


async def test_a_guards_record_with_points_and_the_leaderboard(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    supervisor = await city.user("supervisor")
    async with open_console(
        browser, city, artifacts, "reports-guard", viewport=(1600, 1000)
    ) as console:
        await console.sign_in(supervisor, "correct-horse-battery")
        page = await open_reports(console)
        # The leaderboard on its own, before any guard is opened: every company.
        await page.keyboard.press("3")
        board = page.locator("#report-guard").get_by_role("table", name="Leaderboard")
        await expect(board.locator("tbody tr").first).to_contain_text("Wang Fang")
        await expect(page.get_by_label("Among")).to_have_value("")
        await console.screenshot("leaderboard")
        await page.keyboard.press("1")
        await page.locator("#report-response").get_by_role("button", name="Wang Fang").click()
        await expect(page.get_by_role("tab", name="Guard record")).to_have_attribute(
            "aria-selected", "true"
        )
        panel = page.locator("#report-guard")
        await expect(panel.get_by_role("heading", name="Wang Fang")).to_be_visible()
        ledger = panel.get_by_role("table", name="Points ledger")
        await expect(ledger).to_contain_text("First on scene")
        await expect(ledger).to_contain_text("Commendation")
        await expect(ledger.locator("td.points.plus").first).to_be_visible()
        board = panel.get_by_role("table", name="Leaderboard")
        me = board.locator("tr[aria-current=true]")
        await expect(me).to_contain_text("Wang Fang")
        await expect(me.locator("td.rank")).to_have_text("1")
        await console.screenshot("guard")
        # A ledger entry's incident opens in the dispatch view; r comes back to the record.
        await ledger.locator("td button.link").first.click()
        detail = console.region("Incident detail")
        await expect(detail).to_contain_text("shop window smashed")
        await page.keyboard.press("r")
        await expect(panel.get_by_role("heading", name="Wang Fang")).to_be_visible()

        # From the leaderboard to another guard; Esc goes back to the report it came from.
        await page.get_by_label("Among").select_option(f"station:{seeded['station_id']}")
        await expect(board.locator("tr[aria-current=true]")).to_contain_text("Wang Fang")
        await page.keyboard.press("Escape")
        await expect(page.get_by_role("tab", name="Response")).to_have_attribute(
            "aria-selected", "true"
        )
        await page.keyboard.press("3")
        await panel.get_by_label("Guard ID").fill(seeded["li_na"])
        await panel.get_by_role("button", name="Open record").click()
        await expect(panel.get_by_role("heading", name="Li Na")).to_be_visible()
        await expect(panel.locator(".kpi").nth(1)).to_contain_text("7")  # incidents
        # r: back to the map, which draws at its full size again.
        await page.keyboard.press("r")
        await expect(page.get_by_role("region", name="Map")).to_be_visible()
        await expect(page.get_by_role("button", name="Dispatch")).to_have_attribute(
            "aria-pressed", "true"
        )
        size = await console.map_call("(m) => [m.map.getSize().x, m.map.getSize().y]")
        assert size[0] > 500 and size[1] > 500


async def test_an_operator_has_no_reports_view(
    browser: Browser, city: Harness, artifacts: Path
) -> None:
    async with open_console(browser, city, artifacts, "reports-operator") as console:
        await console.sign_in()
        await expect(console.page.get_by_role("button", name="Reports")).to_be_hidden()
        await console.page.keyboard.press("r")
        await expect(console.region("Map")).to_be_visible()
        await expect(console.page.locator("#reports-view")).to_be_hidden()


async def test_a_company_manager_reports_on_their_own_company_only(
    browser: Browser, city: Harness, artifacts: Path, seeded: dict[str, Any]
) -> None:
    night = seeded["night"]
    manager = await city.user("company_manager", company_id=night["id"])
    async with open_console(
        browser, city, artifacts, "reports-manager", viewport=(1600, 1000)
    ) as console:
        await console.sign_in(manager, "correct-horse-battery")
        page = await open_reports(console)
        panel = page.locator("#report-response")
        company = panel.locator("select[name=company_id]")
        await expect(company).to_be_disabled()
        await expect(company).to_have_value(night["id"])
        await expect(panel.locator("table tbody tr")).to_have_count(3)
        await page.keyboard.press("2")
        rows = page.locator("#report-companies table tbody tr")
        await expect(rows).to_have_count(1)
        await expect(rows).to_contain_text("Harbour Night Watch")
        await expect(page.locator("#report-companies").get_by_role("list")).not_to_contain_text(
            "Old Gate"
        )
        await console.screenshot("companies")
