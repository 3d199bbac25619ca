"""CAP export stays well-formed XML whatever text an incident carries.

XML 1.0 cannot carry most C0 control characters, lone surrogates, U+FFFE or U+FFFF at all,
escaped or not; they become U+FFFD in the export instead of a document no parser reads.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.integrations.cap import render, xml_text
from app.models import Incident
from tests.harness import Harness

NS = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
# Every character XML 1.0 refuses that a JSON string can still carry (but NUL, which the
# databases refuse: tested below on the renderer alone).
CONTROLS = "".join(chr(c) for c in [*range(0x01, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20)])
NONCHARACTERS = "\ufffe\uffff"


def text(root: ET.Element, path: str) -> str | None:
    found = root.find(path, NS)
    return None if found is None else found.text


def incident(description: str, address: str | None = None, ref: str | None = None) -> Incident:
    now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return Incident(
        id="inc_text",
        status="new",
        source="console",
        category="theft",
        priority=3,
        lat=31.2,
        lon=121.4,
        address=address,
        description=description,
        external_ref=ref,
        created_at=now,
        updated_at=now,
    )


@pytest.mark.usefixtures("backend")
async def test_cap_of_an_incident_with_control_characters_parses(
    harness: Harness, area: tuple[float, float]
) -> None:
    description = f"gate{CONTROLS}open{NONCHARACTERS}, tab\there, line\nnext"
    address = "1\x0bNanjing\x1bRoad\x7f"
    created = await harness.make_incident(area, description=description, address=address)
    stored = await harness.get(f"/api/v1/incidents/{created['id']}")
    assert stored.json()["description"] == description  # kept as given: JSON carries it
    response = await harness.get(f"/api/v1/incidents/{created['id']}/cap")
    assert response.status_code == 200
    root = ET.fromstring(response.content)  # well-formed: it parses
    assert text(root, "cap:info/cap:description") == (
        "gate" + "\ufffd" * len(CONTROLS) + "open\ufffd\ufffd, tab\there, line\nnext"
    )
    assert text(root, "cap:info/cap:area/cap:areaDesc") == "1\ufffdNanjing\ufffdRoad\x7f"


def parsed(value: str) -> str:
    """What an XML parser reads back: line ends normalised to LF."""
    return value.replace("\r\n", "\n").replace("\r", "\n")


ANY_CHARACTER = st.characters(exclude_categories=())  # surrogates too


@given(st.text(ANY_CHARACTER, min_size=1, max_size=200), st.text(ANY_CHARACTER, max_size=100))
def test_any_text_renders_a_document_that_parses(description: str, address: str) -> None:
    """Including NUL and lone surrogates, which no request can store but a renderer must
    survive all the same."""
    root = ET.fromstring(render(incident(description, address or None), "s@x", "sender"))
    assert text(root, "cap:info/cap:description") == parsed(xml_text(description))
    if address:
        assert text(root, "cap:info/cap:area/cap:areaDesc") == parsed(xml_text(address))


def test_every_character_xml_refuses_is_replaced_and_the_rest_kept() -> None:
    refused = "\x00" + CONTROLS + "\ud800\udfff" + NONCHARACTERS
    kept = "\t\n\r é 道 \ud7ff\ue000\ufffd\U0001f6a8\U0010ffff"
    assert xml_text(refused) == "\ufffd" * len(refused)
    assert xml_text(kept) == kept
    body = render(incident(refused + kept, refused, "ref-1"), "s@x", "sender")
    root = ET.fromstring(body)
    description = text(root, "cap:info/cap:description") or ""
    # The parser reads a CR as a line end; every other character comes back as written.
    assert description == "\ufffd" * len(refused) + parsed(kept)
