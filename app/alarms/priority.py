"""Which priority an alarm gets: a pure function of its event code and its verification.

Event codes come as SIA DC-03 two-letter codes (`BA` burglary alarm, `FA` fire alarm, …)
or Ademco Contact ID event codes (`130`, or `E130` / `1130` with the qualifier for a new
event). Each falls into a class; the class gives a base priority, and a verified alarm
(someone heard, saw or stood at the site: `audio`, `video`, `guard`) ranks one step higher,
because most unverified intrusion alarms are false and a verified one is a crime under way.

| class    | SIA codes            | Contact ID   | unverified | verified |
|----------|----------------------|--------------|------------|----------|
| holdup   | HA PA DU             | 12x          | 1          | 1        |
| fire     | FA GA KA             | 11x, 15x gas | 1          | 1        |
| medical  | MA                   | 10x          | 2          | 1        |
| burglary | BA                   | 13x, 14x     | 3          | 2        |
| other    | anything else (TA …) | anything else| 4          | 3        |
"""

from __future__ import annotations

from typing import Literal

AlarmClass = Literal["holdup", "fire", "medical", "burglary", "other"]
Verification = Literal["none", "audio", "video", "guard"]

SIA_CLASSES: dict[str, AlarmClass] = {
    "HA": "holdup",  # hold-up alarm
    "PA": "holdup",  # panic alarm
    "DU": "holdup",  # duress
    "FA": "fire",
    "GA": "fire",  # gas alarm
    "KA": "fire",  # heat alarm
    "MA": "medical",
    "BA": "burglary",
}

# Contact ID: the first two digits of the three-digit event code.
CONTACT_ID_CLASSES: dict[str, AlarmClass] = {
    "10": "medical",
    "11": "fire",
    "12": "holdup",
    "13": "burglary",
    "14": "burglary",  # general alarm
    "15": "fire",  # 151 gas detected and the other 24-hour environmental alarms
}

BASE_PRIORITY: dict[AlarmClass, int] = {
    "holdup": 1,
    "fire": 1,
    "medical": 2,
    "burglary": 3,
    "other": 4,
}

LABELS: dict[AlarmClass, str] = {
    "holdup": "hold-up / panic alarm",
    "fire": "fire alarm",
    "medical": "medical alarm",
    "burglary": "intrusion alarm",
    "other": "alarm",
}


def classify(event_code: str) -> AlarmClass:
    """The class of an SIA or Contact ID event code; `other` when it is neither."""
    code = event_code.strip().upper()
    if code in SIA_CLASSES:
        return SIA_CLASSES[code]
    digits = code[1:] if code[:1] == "E" else code
    if len(digits) == 4 and digits[0] == "1":  # Contact ID qualifier 1 = new event
        digits = digits[1:]
    if len(digits) == 3 and digits.isdigit():
        return CONTACT_ID_CLASSES.get(digits[:2], "other")
    return "other"


def is_verified(verification: Verification) -> bool:
    return verification != "none"


def priority_for(event_code: str, verification: Verification) -> int:
    """1 (critical) … 4 (low): the class's base, one step higher when verified."""
    base = BASE_PRIORITY[classify(event_code)]
    return max(1, base - 1) if is_verified(verification) else base
