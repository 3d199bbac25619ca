"""CAP 1.2 export: document structure and the priority/category mapping."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from tests.harness import Harness
from tests.test_errors import assert_error

pytestmark = pytest.mark.usefixtures("backend")
NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}


def text(root: ET.Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.text


@pytest.mark.parametrize(
    "category,priority,cap_category,urgency,severity,certainty",
    [
        ("fire", 1, "Fire", "Immediate", "Extreme", "Observed"),
        ("medical", 2, "Health", "Immediate", "Severe", "Observed"),
        ("theft", 3, "Security", "Expected", "Moderate", "Likely"),
        ("traffic", 4, "Transport", "Future", "Minor", "Possible"),
    ],
)
async def test_incident_renders_as_a_cap_alert(
    harness: Harness,
    area: tuple[float, float],
    category: str,
    priority: int,
    cap_category: str,
    urgency: str,
    severity: str,
    certainty: str,
) -> None:
    incident = await harness.make_incident(
        area, category=category, priority=priority, address="1 Nanjing Road"
    )
    response = await harness.get(f"/api/v1/incidents/{incident['id']}/cap")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/cap+xml"
    )
    root = ET.fromstring(response.content)
    assert root.tag == "{urn:oasis:names:tc:emergency:cap:1.2}alert"
    order = [child.tag.split("}")[1] for child in root]
    assert order[:7] == ["identifier", "sender", "sent", "status", "msgType", "source", "scope"]
    # The first message about the incident: named by the incident and its creation event.
    assert (text(root, "cap:identifier") or "").startswith(f"{incident['id']}.")
    assert text(root, "cap:msgType") == "Alert" and root.find("cap:references", NS) is None
    assert text(root, "cap:incidents") == incident["id"]
    assert text(root, "cap:status") == "Actual" and text(root, "cap:scope") == "Restricted"
    assert text(root, "cap:restriction")
    sent = text(root, "cap:sent") or ""
    assert sent.endswith("-00:00") and "Z" not in sent and len(sent) == 25
    assert text(root, "cap:info/cap:category") == cap_category
    assert text(root, "cap:info/cap:urgency") == urgency
    assert text(root, "cap:info/cap:severity") == severity
    assert text(root, "cap:info/cap:certainty") == certainty
    assert text(root, "cap:info/cap:event")
    assert text(root, "cap:info/cap:description") == incident["description"]
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "1 Nanjing Road"
    lat_lon, radius = (text(root, "cap:info/cap:area/cap:circle") or "").split(" ")
    lat, lon = (float(v) for v in lat_lon.split(","))
    assert (lat, lon) == pytest.approx(area) and float(radius) > 0


async def test_cancelled_incident_is_a_cap_cancel_and_unknown_is_404(
    harness: Harness, area: tuple[float, float]
) -> None:
    incident = await harness.make_incident(area)
    await harness.post(f"/api/v1/incidents/{incident['id']}/cancel", role="operator")
    root = ET.fromstring((await harness.get(f"/api/v1/incidents/{incident['id']}/cap")).content)
    assert text(root, "cap:msgType") == "Cancel"
    assert_error(await harness.get("/api/v1/incidents/inc_missing/cap"), 404, "not_found")
