"""An incident as a NENA Emergency Incident Data Object (EIDO, NENA-STA-021.1b JSON).

The document is the incident's latest published version (app/integrations/versions.py):
its `$id` is derived from the incident and the event that produced that version, so the
same version always has the same id. Components carried: the incident, the agencies (this
dispatch centre, `Dispatching` and owning; the jurisdiction's police station,
`Informational`, or `Dispatched` once escalated to; any other station escalated to), the
incident location (PIDF-LO point, `CurrentIncident`) and notes (the description; for a
drill, a note saying so). Registry values are from the NENA-STA-021.1b registries (§3).
Guards are not emergency resources in the NENA registries and are not listed; their work
shows in the incident status (`ResourcesAssigned`, `ResourcesOnscene`).
"""

from __future__ import annotations

import datetime as dt
import html
import json
import uuid
from typing import Any
from xml.sax.saxutils import quoteattr

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.integrations.cap import EVENT_NAMES
from app.integrations.versions import versions
from app.models import Escalation, Incident, PoliceStation

EIDO_VERSION = "1.0"
CONTEXT = {"@vocab": "./JSON-LD_Contexts/EmergencyIncidentDataObjectType.jsonld"}
# category → EIDO-IncidentType-Common (APCO ANS 2.103.2 codes), the closest common type.
INCIDENT_TYPES = {
    "assault": "ASSAULT",
    "robbery": "ROBBERY",
    "theft": "LARCENY",
    "fire": "FUNK",  # Fire Unknown: the category does not say what is burning
    "medical": "SICK",
    "disturbance": "DISORD",
    "suspicious": "SUSP",
    "alarm": "ALRU",  # Alarm Unknown
    "traffic": "MVAUNK",
    "missing_person": "PERMISS",
    "other": "TROUBLE",
}
# status → EIDO-IncidentStatus-Common
INCIDENT_STATUSES = {
    "new": ["Active"],
    "dispatching": ["Active"],
    "assigned": ["Active", "ResourcesAssigned"],
    "on_scene": ["Active", "ResourcesOnscene"],
    "resolved": ["Closed"],
    "closed": ["Closed"],
    "cancelled": ["Cancelled"],
}
DRILL_NOTE = "EXERCISE: this incident is a drill, not a real emergency."


def timestamp(value: dt.datetime) -> str:
    """NENA-STA-010 §2.3 time: RFC 3339 with an explicit offset."""
    return value.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def _uid(domain: str, name: str) -> str:
    """A globally unique id, the same for the same name on every render."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"eido://{domain}/{name}"))


def _jcard(name: str) -> str:
    return json.dumps(["vcard", [["version", {}, "text", "4.0"], ["fn", {}, "text", name]]])


def _pidf_point(entity: str, lat: float, lon: float) -> str:
    """A PIDF-LO (RFC 4119 / 5491) document holding the point."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        'xmlns:gp="urn:ietf:params:xml:ns:pidf:geopriv10" '
        f'xmlns:gml="http://www.opengis.net/gml" entity={quoteattr(entity)}>'
        '<tuple id="incident"><status><gp:geopriv><gp:location-info>'
        '<gml:Point srsName="urn:ogc:def:crs:EPSG::4326">'
        f"<gml:pos>{lat:.6f} {lon:.6f}</gml:pos></gml:Point>"
        "</gp:location-info><gp:usage-rules/></gp:geopriv></status></tuple></presence>"
    )


def build(
    incident: Incident,
    sender: str,
    version_id: str,
    updated: dt.datetime,
    stations: dict[str, str],
    escalated_to: set[str],
) -> dict[str, Any]:
    """The EIDO for this version of the incident (pure: all it needs is passed in).

    `stations` maps station ids to names; `escalated_to` are the stations the incident was
    escalated to.
    """
    domain = sender.rpartition("@")[2] or sender
    stamp = timestamp(updated)
    owner = {"$ref": domain}

    def prologue(component_id: str) -> dict[str, Any]:
        return {
            "$id": component_id,
            "lastUpdateTimeStamp": stamp,
            "updatedByAgencyReference": owner,
        }

    agencies = [
        {
            **prologue(domain),
            "agencyRoleDescriptionRegistryText": ["Dispatching"],
            "agencyType": ["police"],
            "incidentOwningAgencyIndicator": True,
        }
    ]
    involved = ([incident.station_id] if incident.station_id else []) + sorted(
        escalated_to - {incident.station_id}
    )
    for station_id in involved:
        agency: dict[str, Any] = {
            **prologue(f"{station_id}.{domain}"),
            "agencyRoleDescriptionRegistryText": [
                "Dispatched" if station_id in escalated_to else "Informational"
            ],
            "agencyType": ["police"],
            "incidentOwningAgencyIndicator": False,
        }
        if station_id in stations:
            agency["agencyJcard"] = _jcard(stations[station_id])
        agencies.append(agency)

    location_id = _uid(domain, f"{incident.id}/location")
    location: dict[str, Any] = {
        **prologue(location_id),
        "locationTypeDescriptionRegistryText": "CurrentIncident",
        "locationByValue": _pidf_point(f"pres:{incident.id}@{domain}", incident.lat, incident.lon),
    }
    if incident.address:
        location["locationDescriptionText"] = incident.address

    notes = [
        {
            **prologue(_uid(domain, f"{incident.id}/description")),
            "notesActionComments": f"<p>{html.escape(incident.description)}</p>",
        }
    ]
    if incident.exercise:
        notes.append(
            {
                **prologue(_uid(domain, f"{incident.id}/exercise")),
                "notesActionComments": f"<p>{DRILL_NOTE}</p>",
            }
        )

    status_internal = [incident.status] + (["exercise"] if incident.exercise else [])
    incident_component: dict[str, Any] = {
        **prologue(f"urn:emergency:uid:incidentid:{incident.id}:{domain}"),
        "incidentTypeCommonRegistryText": INCIDENT_TYPES.get(incident.category, "TROUBLE"),
        "incidentTypeInternalCode": incident.category,
        "incidentTypeInternalText": EVENT_NAMES.get(incident.category, "Incident"),
        "incidentStatusCommonRegistryText": INCIDENT_STATUSES.get(incident.status, ["Active"]),
        "incidentStatusInternalText": status_internal,
        "internalIncidentId": incident.id,
        "incidentCommonPriorityNumber": incident.priority,
        "incidentPriorityInternalText": f"P{incident.priority}",
        "locationReference": [{"$ref": location_id}],
        "notesReference": [{"$ref": note["$id"]} for note in notes],
    }
    if incident.station_id:
        incident_component["beatOrDispatchGroupText"] = incident.station_id

    return {
        **prologue(_uid(domain, version_id)),
        "eidoVersion": EIDO_VERSION,
        "issuingElementIdentification": sender,
        "incidentComponent": incident_component,
        "agencyComponent": agencies,
        "locationComponent": [location],
        "notesComponent": notes,
        "@context": CONTEXT,
    }


async def document(session: AsyncSession, incident: Incident, sender: str) -> dict[str, Any]:
    """Load what the EIDO needs and build it for the incident's latest version."""
    history = await versions(session, incident.id)
    latest = history[-1] if history else None
    escalated_to = set(
        (
            await session.scalars(
                select(Escalation.station_id).where(Escalation.incident_id == incident.id)
            )
        ).all()
    )
    wanted = escalated_to | ({incident.station_id} if incident.station_id else set())
    stations: dict[str, str] = {}
    if wanted:
        rows = await session.execute(
            select(PoliceStation.id, PoliceStation.name).where(PoliceStation.id.in_(wanted))
        )
        stations = {station_id: name for station_id, name in rows}
    return build(
        incident,
        sender,
        latest.identifier if latest else incident.id,
        latest.at if latest else incident.updated_at,
        stations,
        escalated_to,
    )
