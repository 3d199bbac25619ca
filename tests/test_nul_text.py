"""NUL (U+0000) in any text is refused up front: PostgreSQL cannot store it, and a 500
after validation passed would be the answer otherwise."""

from __future__ import annotations

import pytest

from tests.harness import Harness
from tests.phones import guard_at
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")


async def test_nul_in_a_body_is_a_422_naming_the_field(
    harness: Harness, area: tuple[float, float]
) -> None:
    body = {
        "category": "theft",
        "priority": 3,
        "location": {"lat": area[0], "lon": area[1]},
        "description": "bicycle\x00stolen",
    }
    response = await harness.post("/api/v1/incidents", body, role="operator")
    assert_error(response, 422, "validation_error")
    assert "description" in response.text and "NUL" in response.text
    listed = await harness.get("/api/v1/incidents", params={"limit": 200})
    assert all("\x00" not in (i.get("description") or "") for i in listed.json()["items"])


async def test_nul_in_a_path_or_query_never_reaches_the_database_as_a_500(
    harness: Harness,
) -> None:
    missing = await harness.get("/api/v1/incidents/inc_%00")
    assert missing.status_code in (404, 422), missing.text
    listed = await harness.get("/api/v1/guards", params={"company_id": "co\x00x"})
    assert listed.status_code in (200, 404, 422), listed.text


async def test_nul_in_a_guard_report_is_an_invalid_frame(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, area)
    await phone.send(
        {
            "type": "report",
            "category": "theft",
            "lat": area[0],
            "lon": area[1],
            "description": "x\x00y",
        }
    )
    error = await phone.expect("error")
    assert error["code"] == "invalid_frame" and "description" in error["message"], error
    await phone.sync()  # the socket stays open
    await phone.close()
