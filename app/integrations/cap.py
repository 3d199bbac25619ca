"""An incident as an OASIS CAP 1.2 alert, for command centres that ingest CAP."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from app.models import Incident

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"

# priority → (urgency, severity, certainty)
PRIORITY_MAP = {
    1: ("Immediate", "Extreme", "Observed"),
    2: ("Immediate", "Severe", "Observed"),
    3: ("Expected", "Moderate", "Likely"),
    4: ("Future", "Minor", "Possible"),
}
CATEGORY_MAP = {
    "assault": "Security",
    "robbery": "Security",
    "theft": "Security",
    "disturbance": "Security",
    "suspicious": "Security",
    "alarm": "Security",
    "fire": "Fire",
    "medical": "Health",
    "traffic": "Transport",
    "missing_person": "Rescue",
    "other": "Other",
}
EVENT_NAMES = {
    "assault": "Assault",
    "robbery": "Robbery",
    "theft": "Theft",
    "fire": "Fire",
    "medical": "Medical emergency",
    "disturbance": "Disturbance",
    "suspicious": "Suspicious activity",
    "alarm": "Alarm activation",
    "traffic": "Traffic incident",
    "missing_person": "Missing person",
    "other": "Incident",
}
AREA_RADIUS_KM = 0.5


def cap_time(value: dt.datetime) -> str:
    """CAP times carry an explicit offset; UTC is written -00:00, never Z."""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "-00:00")


def msg_type(incident: Incident) -> str:
    if incident.status == "cancelled":
        return "Cancel"
    return "Alert" if incident.updated_at == incident.created_at else "Update"


def render(incident: Incident, sender: str, sender_name: str) -> bytes:
    """The CAP 1.2 <alert> document for this incident (UTF-8 XML bytes)."""
    ET.register_namespace("", CAP_NS)

    def sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        element.text = text
        return element

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    sub(alert, "identifier", incident.id)
    sub(alert, "sender", sender)
    sub(alert, "sent", cap_time(incident.updated_at))
    sub(alert, "status", "Actual")
    sub(alert, "msgType", msg_type(incident))
    sub(alert, "source", incident.source)
    sub(alert, "scope", "Restricted")
    sub(alert, "restriction", "police and licensed security personnel")
    if incident.external_ref:
        sub(alert, "note", f"external_ref={incident.external_ref}")
    urgency, severity, certainty = PRIORITY_MAP[incident.priority]
    info = ET.SubElement(alert, f"{{{CAP_NS}}}info")
    sub(info, "language", "en")
    sub(info, "category", CATEGORY_MAP.get(incident.category, "Other"))
    sub(info, "event", EVENT_NAMES.get(incident.category, "Incident"))
    sub(info, "urgency", urgency)
    sub(info, "severity", severity)
    sub(info, "certainty", certainty)
    sub(info, "senderName", sender_name)
    sub(
        info,
        "headline",
        f"P{incident.priority} {EVENT_NAMES.get(incident.category, 'Incident')}: {incident.status}",
    )
    sub(info, "description", incident.description)
    parameter = ET.SubElement(info, f"{{{CAP_NS}}}parameter")
    sub(parameter, "valueName", "status")
    sub(parameter, "value", incident.status)
    area = ET.SubElement(info, f"{{{CAP_NS}}}area")
    sub(area, "areaDesc", incident.address or f"{incident.lat:.6f},{incident.lon:.6f}")
    sub(area, "circle", f"{incident.lat:.6f},{incident.lon:.6f} {AREA_RADIUS_KM}")
    return (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        + ET.tostring(alert, encoding="unicode").encode()
    )
