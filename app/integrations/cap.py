"""An incident as an OASIS CAP 1.2 alert, for command centres that ingest CAP.

Each published version of the incident (app/integrations/versions.py) is one CAP message:
`Alert` for the first, `Update` after, `Cancel` once the incident is cancelled; its
identifier is `<incident id>.<event id>` and `<references>` lists every earlier message as
`sender,identifier,sent` (CAP 1.2 §3.2.1). A drill says `<status>Exercise</status>`.
"""

from __future__ import annotations

import datetime as dt
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from app.integrations.versions import Version
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
# Characters XML 1.0 does not allow in a document at all, escaped or not: C0 controls but
# tab, LF and CR; lone surrogates; U+FFFE and U+FFFF.
NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: str) -> str:
    """`value` with every character XML cannot carry replaced by U+FFFD, so the document
    is well-formed whatever text an incident holds."""
    return NOT_XML_CHAR.sub("\ufffd", value)


def cap_time(value: dt.datetime) -> str:
    """CAP times carry an explicit offset; UTC is written -00:00, never Z."""
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "-00:00")


def msg_type(incident: Incident, earlier: int | None = None) -> str:
    """`Cancel` once cancelled; else `Alert` for the first message, `Update` after."""
    if incident.status == "cancelled":
        return "Cancel"
    if earlier is None:  # no history given: judge by the incident alone
        return "Alert" if incident.updated_at == incident.created_at else "Update"
    return "Update" if earlier else "Alert"


def references(sender: str, earlier: Sequence[Version]) -> str:
    """CAP `references`: `sender,identifier,sent` per earlier message, space-separated."""
    return " ".join(f"{sender},{v.identifier},{cap_time(v.at)}" for v in earlier)


def render(
    incident: Incident, sender: str, sender_name: str, history: Sequence[Version] = ()
) -> bytes:
    """The CAP 1.2 <alert> document for this incident (UTF-8 XML bytes).

    `history` is the incident's versions, oldest first; the document is the last one's
    message and references the rest. Without it, the incident id names the message.
    """
    ET.register_namespace("", CAP_NS)

    def sub(parent: ET.Element, tag: str, text: str) -> ET.Element:
        element = ET.SubElement(parent, f"{{{CAP_NS}}}{tag}")
        element.text = xml_text(text)
        return element

    current = history[-1] if history else None
    earlier = history[:-1]
    alert = ET.Element(f"{{{CAP_NS}}}alert")
    sub(alert, "identifier", current.identifier if current else incident.id)
    sub(alert, "sender", sender)
    sub(alert, "sent", cap_time(current.at if current else incident.updated_at))
    sub(alert, "status", "Exercise" if incident.exercise else "Actual")
    sub(alert, "msgType", msg_type(incident, len(earlier) if current else None))
    sub(alert, "source", incident.source)
    sub(alert, "scope", "Restricted")
    sub(alert, "restriction", "police and licensed security personnel")
    notes = []
    if incident.exercise:
        notes.append("Exercise: a drill, not a real incident")
    if incident.external_ref:
        notes.append(f"external_ref={incident.external_ref}")
    if notes:
        sub(alert, "note", "; ".join(notes))
    if earlier:
        sub(alert, "references", references(sender, earlier))
    sub(alert, "incidents", incident.id)
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
