"""Standards exports (issue 11 §6), validated against the published schemas vendored in
tests/standards/ (see its README for where they come from and what is done at load).

CAP 1.2: one message per published version of the incident — `Alert` first, `Update`
after, `Cancel` once cancelled — each with its own identifier and `<references>` to every
earlier one. NENA EIDO (NENA-STA-021.1b): `GET /api/v1/incidents/{id}/eido`."""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator
from lxml import etree
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from app.integrations import eido
from app.integrations.cap import cap_time
from app.integrations.versions import VERSION_EVENTS
from tests.harness import Harness
from tests.phones import guard_at, offset
from tests.test_dispatch_flow import timeline
from tests.test_errors import assert_error

STANDARDS = Path(__file__).parent / "standards"
CAP = {"cap": "urn:oasis:names:tc:emergency:cap:1.2"}
EIDO_BASE = "https://nena.example/EIDO-JSON/Schema/openapi.yaml"

# From the NENA-STA-021.1b registry tables (§3): the values the export may use.
INCIDENT_TYPE_CODES = {
    "ASSAULT", "ROBBERY", "LARCENY", "FUNK", "SICK", "DISORD", "SUSP", "ALRU", "MVAUNK",
    "PERMISS", "TROUBLE",
}  # fmt: skip
INCIDENT_STATUS_COMMON = {
    "Active", "Cancelled", "Closed", "FireUnderControl", "NewLocation", "ReOpened",
    "ResourcesAssigned", "ResourcesEnroute", "ResourcesOnscene", "StructureCleared",
}  # fmt: skip
AGENCY_ROLES = {"Assisting", "CallReceiving", "Dispatched", "Dispatching", "Informational"}
LOCATION_TYPES = {"CurrentIncident"}


# CAP ---------------------------------------------------------------------------------


@functools.cache
def cap_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(STANDARDS / "CAP-v1.2.xsd")))


async def cap_message(harness: Harness, incident_id: str, role: str = "admin") -> etree._Element:
    """The incident's CAP message, checked against the OASIS CAP 1.2 schema."""
    response = await harness.get(f"/api/v1/incidents/{incident_id}/cap", role=role)
    assert response.status_code == 200, response.text
    root = etree.fromstring(response.content)
    assert cap_schema().validate(root), cap_schema().error_log
    return root


def field(root: etree._Element, name: str) -> str | None:
    return root.findtext(f"cap:{name}", namespaces=CAP)


def referenced(root: etree._Element) -> list[tuple[str, str, str]]:
    """`<references>` as (sender, identifier, sent) triples."""
    refs = field(root, "references")
    return [tuple(triple.split(",")) for triple in refs.split()] if refs else []  # type: ignore[misc]


@pytest.mark.usefixtures("backend")
async def test_cap_messages_go_alert_update_cancel_each_referencing_the_earlier_ones(
    harness: Harness, area: tuple[float, float]
) -> None:
    phone = await guard_at(harness, offset(area, north_m=90))
    incident = await harness.make_incident(area, category="medical", priority=2)
    alert = await cap_message(harness, incident["id"])
    assert field(alert, "msgType") == "Alert" and field(alert, "status") == "Actual"
    assert referenced(alert) == [] and field(alert, "incidents") == incident["id"]
    again = await cap_message(harness, incident["id"])
    assert etree.tostring(again) == etree.tostring(alert)  # same version, same message

    offer = await phone.expect("offer")
    await phone.send({"type": "offer.accept", "offer_id": offer["offer_id"]})
    assignment = await phone.expect("assignment")
    assigned = await cap_message(harness, incident["id"])
    await phone.send(
        {
            "type": "assignment.status",
            "assignment_id": assignment["assignment_id"],
            "status": "on_scene",
        }
    )
    await phone.expect("incident.update")
    on_scene = await cap_message(harness, incident["id"])
    cancelled = await harness.post(f"/api/v1/incidents/{incident['id']}/cancel", role="operator")
    assert cancelled.status_code == 200, cancelled.text
    cancel = await cap_message(harness, incident["id"])

    sequence = [alert, assigned, on_scene, cancel]
    assert [field(m, "msgType") for m in sequence] == ["Alert", "Update", "Update", "Cancel"]
    identifiers = [field(m, "identifier") for m in sequence]
    assert len(set(identifiers)) == 4
    sender = field(alert, "sender")
    for n, message in enumerate(sequence):
        assert field(message, "sender") == sender
        assert referenced(message) == [
            (sender, field(earlier, "identifier"), field(earlier, "sent"))
            for earlier in sequence[:n]
        ]
    # Each message is named by the event that produced its version, sent at its time.
    versions = [e for e in await timeline(harness, incident["id"]) if e["type"] in VERSION_EVENTS]
    assert [e["type"] for e in versions] == [
        "incident.created",
        "incident.assigned",
        "incident.on_scene",
        "incident.cancelled",
    ]
    assert identifiers == [f"{incident['id']}.{e['id']}" for e in versions]
    assert [field(m, "sent") for m in sequence] == [
        cap_time(dt.datetime.fromisoformat(e["at"])) for e in versions
    ]
    await phone.close()


@pytest.mark.usefixtures("backend")
async def test_a_drill_in_cap_is_an_exercise_and_still_valid(
    harness: Harness, area: tuple[float, float]
) -> None:
    drill = await harness.make_incident(area, exercise=True, external_ref="drill-cap-1")
    message = await cap_message(harness, drill["id"])
    assert field(message, "status") == "Exercise" and field(message, "msgType") == "Alert"
    assert (
        field(message, "note") == "Exercise: a drill, not a real incident; external_ref=drill-cap-1"
    )


# EIDO --------------------------------------------------------------------------------


@functools.cache
def eido_schema() -> dict[str, Any]:
    document = yaml.safe_load((STANDARDS / "eido-openapi.yaml").read_text(encoding="utf-8"))
    schemas = document["components"]["schemas"]
    roles = schemas["AgentType"]["allOf"][1]["properties"]["agentRoleRegistryText"]
    assert roles["minItems"] == "1,"  # the published typo, read as the 1 it means
    roles["minItems"] = 1
    return dict(document)


def eido_validator(touched: list[str]) -> Draft7Validator:
    """Validates against EmergencyIncidentDataObjectType; NIEM details are the schema
    `false` (not vendored), and every NIEM file a validation reaches lands in `touched`."""

    def retrieve(uri: str) -> Resource[Any]:
        if "/NIEMComponents/" not in uri:
            raise LookupError(uri)
        touched.append(uri)
        return DRAFT7.create_resource(False)

    document = copy.deepcopy(eido_schema())
    registry: Registry[Any] = Registry(retrieve=retrieve).with_resource(  # type: ignore[call-arg]
        EIDO_BASE, DRAFT7.create_resource(document)
    )
    root = {"$ref": f"{EIDO_BASE}#/components/schemas/EmergencyIncidentDataObjectType"}
    return Draft7Validator(root, registry=registry)


def check_eido(document: dict[str, Any]) -> None:
    touched: list[str] = []
    errors = sorted(eido_validator(touched).iter_errors(document), key=str)
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
    assert touched == []  # no person / vehicle / item detail: nothing unchecked
    # Every reference names a component in the document.
    ids = {c["$id"] for key, value in document.items() if key.endswith("Component")
           for c in (value if isinstance(value, list) else [value])}  # fmt: skip
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if set(node) == {"$ref"}:
                refs.append(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document)
    assert refs and set(refs) <= ids, set(refs) - ids
    stamp = dt.datetime.fromisoformat(document["lastUpdateTimeStamp"])
    assert stamp.utcoffset() == dt.timedelta(0)


async def test_the_vendored_eido_schema_rejects_what_it_should() -> None:
    """The validator is not vacuous: a document missing a required part fails."""
    validator = eido_validator([])
    assert not validator.is_valid({"eidoVersion": "1.0"})
    assert not validator.is_valid(
        {
            "$id": "x",
            "lastUpdateTimeStamp": "2026-01-01T00:00:00Z",
            "updatedByAgencyReference": {"$ref": "a"},
            "eidoVersion": "2.0",  # only 1.0 exists
            "issuingElementIdentification": "x",
            "agencyComponent": [],
        }
    )


@pytest.mark.usefixtures("backend")
async def test_eido_of_an_incident_validates_against_the_nena_schema(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    phone = await guard_at(harness, offset(area, north_m=60))
    incident = await harness.make_incident(
        area, category="fire", priority=2, address="3 Binhai Road", description="smoke <b>&</b>"
    )
    response = await harness.get(f"/api/v1/incidents/{incident['id']}/eido", role="operator")
    assert response.status_code == 200 and response.headers["content-type"].startswith(
        "application/json"
    )
    document = response.json()
    check_eido(document)
    assert document["eidoVersion"] == "1.0"
    assert document["@context"]["@vocab"].endswith("EmergencyIncidentDataObjectType.jsonld")
    component = document["incidentComponent"]
    assert component["internalIncidentId"] == incident["id"]
    assert component["$id"].startswith(f"urn:emergency:uid:incidentid:{incident['id']}:")
    assert component["incidentTypeCommonRegistryText"] == "FUNK"
    assert component["incidentCommonPriorityNumber"] == 2
    assert component["incidentStatusCommonRegistryText"] == ["Active"]
    [location] = document["locationComponent"]
    assert location["locationTypeDescriptionRegistryText"] == "CurrentIncident"
    assert location["locationDescriptionText"] == "3 Binhai Road"
    assert f"{area[0]:.6f} {area[1]:.6f}" in location["locationByValue"]
    [note] = document["notesComponent"]
    assert note["notesActionComments"] == "<p>smoke &lt;b&gt;&amp;&lt;/b&gt;</p>"  # HTML5, escaped
    roles = {a["$id"]: a["agencyRoleDescriptionRegistryText"] for a in document["agencyComponent"]}
    assert roles[f"{station['id']}.{document['issuingElementIdentification'].split('@')[1]}"] == [
        "Informational"
    ]
    again = (await harness.get(f"/api/v1/incidents/{incident['id']}/eido")).json()
    assert again == document  # same version, same document, same $id

    await phone.send(
        {"type": "offer.accept", "offer_id": (await phone.expect("offer"))["offer_id"]}
    )
    await phone.expect("assignment")
    escalated = await harness.post(f"/api/v1/incidents/{incident['id']}/escalate", role="operator")
    assert escalated.status_code in (200, 201), escalated.text
    later = (await harness.get(f"/api/v1/incidents/{incident['id']}/eido")).json()
    check_eido(later)
    assert later["$id"] != document["$id"]  # a new version
    assert later["incidentComponent"]["incidentStatusCommonRegistryText"] == [
        "Active",
        "ResourcesAssigned",
    ]
    station_agency = [a for a in later["agencyComponent"] if a["$id"].startswith(station["id"])]
    assert station_agency[0]["agencyRoleDescriptionRegistryText"] == ["Dispatched"]
    assert json.loads(station_agency[0]["agencyJcard"])[1][1][3] == station["name"]
    await phone.close()


@pytest.mark.usefixtures("backend")
async def test_eido_of_a_drill_says_so_and_scoping_matches_the_incident_detail(
    harness: Harness, area: tuple[float, float]
) -> None:
    station = await harness.make_station(area)
    other = await harness.make_station((area[0] + 0.5, area[1]))
    drill = await harness.make_incident(area, exercise=True)
    document = (await harness.get(f"/api/v1/incidents/{drill['id']}/eido")).json()
    check_eido(document)
    assert "exercise" in document["incidentComponent"]["incidentStatusInternalText"]
    assert any("EXERCISE" in n["notesActionComments"] for n in document["notesComponent"])

    own = await harness.api_key(["incidents:read"], station_id=station["id"])
    foreign = await harness.api_key(["incidents:read"], station_id=other["id"])
    unscoped = await harness.api_key(["events:read"])
    url = f"/api/v1/incidents/{drill['id']}/eido"

    async def read_as(key: str, path: str = url) -> Any:
        return await harness.client.get(path, headers={"Authorization": f"Bearer {key}"})

    assert (await read_as(own)).status_code == 200
    # Another station's key is answered exactly as the incident detail answers it.
    refused = await read_as(foreign)
    detail = await read_as(foreign, f"/api/v1/incidents/{drill['id']}")
    assert refused.status_code in (403, 404) and refused.status_code == detail.status_code
    assert refused.json()["error"]["code"] == detail.json()["error"]["code"]
    assert_error(await read_as(unscoped), 403, "forbidden")
    assert_error(await harness.get("/api/v1/incidents/inc_missing/eido"), 404, "not_found")


def test_registry_values_the_export_uses_are_in_the_nena_registries() -> None:
    assert set(eido.INCIDENT_TYPES.values()) <= INCIDENT_TYPE_CODES
    assert {s for v in eido.INCIDENT_STATUSES.values() for s in v} <= INCIDENT_STATUS_COMMON
    assert {"Dispatching", "Dispatched", "Informational"} <= AGENCY_ROLES
    assert LOCATION_TYPES == {"CurrentIncident"}
