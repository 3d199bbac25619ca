"""Pure data for the Tianjin demo city: six precincts, three security companies, 200 guards.

Coordinates are approximate but believable. The six jurisdictions tile a rectangle of
about 19 km x 15.5 km over the central districts (lon 117.09–117.31, lat 39.06–39.20);
neighbours share their boundary vertices exactly, so the polygons never overlap.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

SKILLS = ("first_aid", "aed", "fire", "patrol_vehicle", "k9", "crowd_control")
# Share of guards holding each skill.
SKILL_RATES = {
    "first_aid": 0.85,
    "aed": 0.35,
    "fire": 0.25,
    "patrol_vehicle": 0.10,
    "k9": 0.03,
    "crowd_control": 0.30,
}
GUARD_COUNT = 200
DEFAULT_SEED = 20261123

# The demo area; its outer edge is exactly the union of the six jurisdictions.
WEST, EAST, SOUTH, NORTH = 117.090, 117.310, 39.060, 39.200
_MARGIN = 0.002  # keep guards ~200 m inside the outer edge

# Shared boundary vertices, (lon, lat).
_V = {
    "A": (117.090, 39.200), "B": (117.168, 39.200), "C": (117.248, 39.200),
    "D": (117.310, 39.200), "E": (117.090, 39.146), "F": (117.172, 39.143),
    "G": (117.242, 39.148), "H": (117.310, 39.092), "I": (117.250, 39.100),
    "J": (117.176, 39.112), "K": (117.090, 39.060), "L": (117.178, 39.060),
    "M": (117.310, 39.060), "P": (117.160, 39.172), "Q": (117.232, 39.172),
}  # fmt: skip


@dataclass(frozen=True)
class UnitSeed:
    call_sign: str
    kind: str  # patrol_car | foot | motorcycle
    lat: float
    lon: float


@dataclass(frozen=True)
class PrecinctSeed:
    name: str
    contact_phone: str
    ring: str  # boundary vertex names, counter-clockwise, not repeated at the end
    units: tuple[UnitSeed, ...]

    def jurisdiction(self) -> dict[str, Any]:
        """The precinct as an RFC 7946 Polygon: [lon, lat], closed, counter-clockwise."""
        ring = [list(_V[name]) for name in self.ring]
        return {"type": "Polygon", "coordinates": [ring + [ring[0]]]}


@dataclass(frozen=True)
class CompanySeed:
    name: str
    licence_no: str
    licence_expires_on: dt.date


@dataclass(frozen=True)
class GuardSeed:
    company: int  # index into companies()
    name: str
    badge_no: str
    phone: str
    skills: tuple[str, ...]
    certificate_expires_on: dt.date
    lat: float
    lon: float


PRECINCTS: tuple[PrecinctSeed, ...] = (
    PrecinctSeed("Heping District Police Station", "+86 22 2331 5110", "JIGF", (
        UnitSeed("HP-01", "patrol_car", 39.1268, 117.2032),
        UnitSeed("HP-02", "foot", 39.1238, 117.2003),
        UnitSeed("HP-03", "motorcycle", 39.1352, 117.2188),
    )),
    PrecinctSeed("Nankai District Police Station", "+86 22 2736 4110", "KLJFE", (
        UnitSeed("NK-01", "patrol_car", 39.1105, 117.1540),
        UnitSeed("NK-02", "motorcycle", 39.0862, 117.1395),
    )),
    PrecinctSeed("Hexi District Police Station", "+86 22 2834 2110", "LMHIJ", (
        UnitSeed("HX-01", "patrol_car", 39.0855, 117.2205),
        UnitSeed("HX-02", "patrol_car", 39.0738, 117.2612),
        UnitSeed("HX-03", "foot", 39.0870, 117.2118),
    )),
    PrecinctSeed("Hedong District Police Station", "+86 22 2431 6110", "IHDCQG", (
        UnitSeed("HD-01", "patrol_car", 39.1302, 117.2695),
        UnitSeed("HD-02", "motorcycle", 39.1148, 117.2903),
    )),
    PrecinctSeed("Hebei District Police Station", "+86 22 2628 5110", "FGQCBP", (
        UnitSeed("HB-01", "patrol_car", 39.1702, 117.2008),
        UnitSeed("HB-02", "foot", 39.1605, 117.2231),
    )),
    PrecinctSeed("Hongqiao District Police Station", "+86 22 2652 7110", "AEFPB", (
        UnitSeed("HQ-01", "patrol_car", 39.1708, 117.1402),
    )),
)  # fmt: skip

# (name, licence_no, days until the licence expires): one renewal is due within the
# month, so the regulator's view has a warning to show.
_COMPANIES = (
    ("Tianjin Baoan Security Service Group Co., Ltd.", "TJ-SEC-2019-0012", 730),
    ("Jinmen Guardian Security Services Co., Ltd.", "TJ-SEC-2021-0347", 21),
    ("Haihe Shield Protection & Escort Co., Ltd.", "TJ-SEC-2022-0581", 1095),
)
_CERTIFICATES_DUE = 0.03  # share of guards whose certificate expires within the month
_COMPANY_WEIGHTS = (0.45, 0.35, 0.20)

# Where guards stand: (lat, lon, weight) around malls, stations, campuses and compounds.
_HOTSPOTS = (
    (39.1238, 117.2003, 14),  # Binjiang Dao pedestrian street
    (39.1290, 117.1945, 8),  # Heping Road / Jinjie
    (39.1360, 117.2100, 10),  # Tianjin Railway Station
    (39.1036, 117.1680, 8),  # Nankai University
    (39.1087, 117.1715, 6),  # Tianjin University
    (39.1400, 117.1900, 5),  # Ancient Culture Street
    (39.0890, 117.1600, 5),  # Shuishang (Water) Park
    (39.0800, 117.1250, 5),  # Huayuan residential compounds
    (39.1600, 117.1550, 6),  # Tianjin West Railway Station
    (39.1750, 117.1300, 4),  # Xiqing Road residential
    (39.0860, 117.2120, 8),  # Tianjin Cultural Centre
    (39.0990, 117.2050, 6),  # Youyi Road / Friendship Store
    (39.0700, 117.2300, 5),  # Meijiang residential / convention centre
    (39.1220, 117.2600, 7),  # Hedong Wanda Plaza
    (39.1150, 117.2850, 5),  # Dazhigu residential compounds
    (39.1700, 117.2100, 5),  # Jinzhonghe Street, Hebei
)
_SCATTERED = 0.15  # share of guards on beats away from any hotspot
_SPREAD_DEG = 0.0045  # ~450 m standard deviation around a hotspot

_SURNAMES = (
    "Wang", "Li", "Zhang", "Liu", "Chen", "Yang", "Zhao", "Huang", "Zhou", "Wu",
    "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Gao", "Lin", "Luo", "Zheng", "Liang",
)  # fmt: skip
_GIVEN = (
    "Wei", "Fang", "Jun", "Lei", "Qiang", "Min", "Jing", "Tao", "Hao", "Yong", "Jie",
    "Peng", "Xin", "Bo", "Chao", "Gang", "Hui", "Ming", "Ning", "Ping", "Yu", "Zhiqiang",
    "Jianguo", "Haiyang", "Xiaoming", "Dongmei", "Guoqing", "Lihua", "Jianhua", "Wenbo",
    "Yanan", "Zhenyu", "Shuai", "Kai", "Long", "Rui", "Xiaolong", "Chunyan",
)  # fmt: skip


def companies(today: dt.date) -> list[CompanySeed]:
    """The three demo companies; one licence expires within the month."""
    return [
        CompanySeed(name, licence_no, today + dt.timedelta(days=days))
        for name, licence_no, days in _COMPANIES
    ]


def guards(today: dt.date, seed: int = DEFAULT_SEED, count: int = GUARD_COUNT) -> list[GuardSeed]:
    """`count` guards, the same for the same seed: company, name, skills and a position."""
    rng = random.Random(seed)
    return [_guard(rng, index, today) for index in range(count)]


def _guard(rng: random.Random, index: int, today: dt.date) -> GuardSeed:
    lat, lon = _position(rng)
    return GuardSeed(
        company=rng.choices(range(len(_COMPANIES)), weights=_COMPANY_WEIGHTS)[0],
        name=f"{rng.choice(_SURNAMES)} {rng.choice(_GIVEN)}",
        badge_no=f"TJ-G-{100_101 + index:06d}",
        phone=f"+86 13{rng.randint(0, 9)} {rng.randint(0, 9999):04d} {rng.randint(0, 9999):04d}",
        skills=tuple(s for s in SKILLS if rng.random() < SKILL_RATES[s]),
        certificate_expires_on=today
        + dt.timedelta(
            days=rng.randint(5, 28) if rng.random() < _CERTIFICATES_DUE else rng.randint(60, 1095)
        ),
        lat=lat,
        lon=lon,
    )


def _position(rng: random.Random) -> tuple[float, float]:
    """Near a weighted hotspot (or anywhere, for a few), kept inside the demo area."""
    if rng.random() < _SCATTERED:
        lat, lon = rng.uniform(SOUTH, NORTH), rng.uniform(WEST, EAST)
    else:
        lat, lon, _ = rng.choices(_HOTSPOTS, weights=[h[2] for h in _HOTSPOTS])[0]
        lat, lon = rng.gauss(lat, _SPREAD_DEG), rng.gauss(lon, _SPREAD_DEG * 1.3)
    lat = min(max(lat, SOUTH + _MARGIN), NORTH - _MARGIN)
    lon = min(max(lon, WEST + _MARGIN), EAST - _MARGIN)
    return round(lat, 6), round(lon, 6)
