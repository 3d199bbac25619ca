"""What a guard may be asked to do: the risk tiers, grounded in the law guards work under.

Guards are private citizens with a licence, not police. The Regulations on the
Administration of Security Services (保安服务管理条例) tell them to stop unlawful acts in
their service area, report them and protect the scene (art. 29), and forbid restricting
anyone's liberty, searching persons, seizing documents or property, collecting debts or
settling disputes by force, and spreading surveillance footage (art. 30). The Criminal
Procedure Law (刑事诉讼法, art. 84) lets anyone seize a person caught in the act and hand
them straight to the police. Each tier below says what it allows, what it forbids and on
which article, with an instruction template in English and Chinese. Pure data, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

Tier = Literal[
    "observe_report", "secure_scene", "first_aid", "crowd_guidance", "detain_until_police"
]

OBSERVE_REPORT: Tier = "observe_report"
SECURE_SCENE: Tier = "secure_scene"
FIRST_AID: Tier = "first_aid"
CROWD_GUIDANCE: Tier = "crowd_guidance"
DETAIN_UNTIL_POLICE: Tier = "detain_until_police"

# Least to most intrusive; stored and sent in this order.
TIERS: tuple[Tier, ...] = (
    OBSERVE_REPORT,
    SECURE_SCENE,
    FIRST_AID,
    CROWD_GUIDANCE,
    DETAIN_UNTIL_POLICE,
)

Text = dict[str, str]  # {"en": …, "zh": …}


@dataclass(frozen=True)
class TierRule:
    """One tier as clients show it."""

    tier: Tier
    label: Text
    allows: Text
    forbids: Text
    basis: Text  # the articles it rests on
    template: Text  # an instruction the console or a police system can send as is


_ART30 = {
    "en": "Regulations on the Administration of Security Services, art. 30",
    "zh": "《保安服务管理条例》第三十条",
}

CATALOGUE: dict[Tier, TierRule] = {
    OBSERVE_REPORT: TierRule(
        OBSERVE_REPORT,
        label={"en": "Observe and report", "zh": "观察报告"},
        allows={
            "en": "Watch from a safe place and report what you see to the police: people, "
            "vehicles, direction of travel, injuries, hazards.",
            "zh": "在安全位置观察，并向警方报告所见：人员、车辆、去向、伤情、危险源。",
        },
        forbids={
            "en": "Approaching, confronting or following anyone; deleting, altering or "
            "spreading surveillance footage or alarm records (art. 30(5)).",
            "zh": "接近、对峙或跟踪任何人；删改或者扩散监控影像资料、报警记录（第三十条第五项）。",
        },
        basis={
            "en": "Regulations on the Administration of Security Services, art. 29 "
            "(report at once) and art. 30(5)",
            "zh": "《保安服务管理条例》第二十九条（立即报警）、第三十条第五项",
        },
        template={
            "en": "Observe from a safe distance and report to the police what you see. "
            "Do not approach or intervene.",
            "zh": "请在安全距离外观察，并向警方报告所见情况。不要接近或介入。",
        },
    ),
    SECURE_SCENE: TierRule(
        SECURE_SCENE,
        label={"en": "Secure the scene", "zh": "保护现场"},
        allows={
            "en": "Keep bystanders out of the scene, preserve traces and objects as they lie, "
            "note witnesses, guide the police in.",
            "zh": "劝离围观人员，保持现场痕迹、物品原状，记下目击者，为警方引路。",
        },
        forbids={
            "en": "Searching anyone, seizing or confiscating documents or property "
            "(art. 30(1), (2)); moving evidence except to save life.",
            "zh": "搜查他人身体，扣押、没收他人证件、财物（第三十条第一项、第二项）；"
            "除抢救生命外移动物证。",
        },
        basis={
            "en": "Regulations on the Administration of Security Services, art. 29 "
            "(protect the scene) and art. 30(1), (2)",
            "zh": "《保安服务管理条例》第二十九条（保护现场）、第三十条第一项、第二项",
        },
        template={
            "en": "Secure the scene: keep people out, leave everything as it lies and wait "
            "for the police. Do not search anyone or take anything.",
            "zh": "请保护现场：劝离无关人员，保持现场原状，等候警方到达。"
            "不得搜查他人或拿走任何物品。",
        },
    ),
    FIRST_AID: TierRule(
        FIRST_AID,
        label={"en": "First aid", "zh": "现场救护"},
        allows={
            "en": "First aid within your training (bleeding control, recovery position, CPR, "
            "an AED), calling an ambulance and staying with the casualty.",
            "zh": "在所受培训范围内实施急救（止血、复苏体位、心肺复苏、使用AED），"
            "呼叫急救并陪护伤者。",
        },
        forbids={
            "en": "Searching the casualty's body or belongings, taking their documents or "
            "property (art. 30(1), (2)); treatment beyond your training.",
            "zh": "搜查伤者身体或随身物品，拿走其证件、财物（第三十条第一项、第二项）；"
            "超出培训范围的救治。",
        },
        basis=_ART30,
        template={
            "en": "Give first aid within your training and stay with the casualty until the "
            "ambulance arrives. Report their condition.",
            "zh": "请在培训范围内实施急救，陪护伤者直至救护车到达，并报告伤者情况。",
        },
    ),
    CROWD_GUIDANCE: TierRule(
        CROWD_GUIDANCE,
        label={"en": "Crowd guidance", "zh": "疏导人群"},
        allows={
            "en": "Guide people away from danger, keep exits and access routes clear, "
            "direct them to assembly points.",
            "zh": "引导人员远离危险，保持出口和通道畅通，指引至集合地点。",
        },
        forbids={
            "en": "Stopping anyone from leaving or holding them in place (art. 30(1)); "
            "force or threats to settle a dispute (art. 30(4)).",
            "zh": "阻止他人离开或将其控制在原地（第三十条第一项）；以暴力或者暴力威胁处置纠纷"
            "（第三十条第四项）。",
        },
        basis={
            "en": "Regulations on the Administration of Security Services, art. 30(1), (4)",
            "zh": "《保安服务管理条例》第三十条第一项、第四项",
        },
        template={
            "en": "Guide people away from the danger and keep the exits and the access "
            "route clear for the police and ambulance.",
            "zh": "请引导人员远离危险区域，保持出口和警车、救护车通道畅通。",
        },
    ),
    DETAIN_UNTIL_POLICE: TierRule(
        DETAIN_UNTIL_POLICE,
        label={"en": "Hold until police arrive", "zh": "扭送候警"},
        allows={
            "en": "Seize a person caught in the act or just after it, wanted, escaping or "
            "being pursued, and hand them to the police at once (Criminal Procedure Law "
            "art. 84), with no more force than needed.",
            "zh": "对正在实行犯罪或者在犯罪后即时被发觉的、通缉在案的、越狱逃跑的、正在被追捕的人，"
            "可以立即扭送公安机关（《刑事诉讼法》第八十四条），不得超过必要限度。",
        },
        forbids={
            "en": "Holding anyone longer than it takes to hand them over, searching them, "
            "taking their documents or property, insulting or beating them (art. 30(1), (2)).",
            "zh": "超出移交所需时间控制他人，搜查其身体，扣押其证件、财物，侮辱、殴打他人"
            "（第三十条第一项、第二项）。",
        },
        basis={
            "en": "Criminal Procedure Law, art. 84; Regulations on the Administration of "
            "Security Services, art. 30(1), (2)",
            "zh": "《刑事诉讼法》第八十四条；《保安服务管理条例》第三十条第一项、第二项",
        },
        template={
            "en": "If you catch the person in the act, you may hold them until the police "
            "arrive and hand them over at once. Do not search them or take their belongings.",
            "zh": "如当场发现正在作案人员，可将其控制并立即移交到场警方。"
            "不得搜查其身体或拿走其财物。",
        },
    ),
}

_GENERAL = {
    "en": "Never search anyone, seize documents or property, restrict anyone's liberty or "
    "use force to settle a dispute (Regulations on the Administration of Security "
    "Services, art. 30). Keep yourself safe and report to the police at once.",
    "zh": "不得搜查他人身体，不得扣押他人证件、财物，不得限制他人人身自由或以暴力处置纠纷"
    "（《保安服务管理条例》第三十条）。注意自身安全，及时向警方报告。",
}
_OBSERVE_ONLY = {
    "en": "Observe and report only: the police are on their way. Watch from a safe place; "
    "do not approach, confront or follow anyone.",
    "zh": "仅限观察报告：警方正在赶来。请在安全位置观察，不要接近、对峙或跟踪任何人。",
}
_HOLD = {
    "en": "A person caught in the act may be held only until the police arrive and must "
    "be handed to them at once (Criminal Procedure Law, art. 84).",
    "zh": "对当场发现的作案人员只能控制至警方到达，并须立即移交警方（《刑事诉讼法》第八十四条）。",
}


def ordered(tiers: Iterable[str]) -> list[Tier]:
    """Known tiers in catalogue order, without repeats (unknown names are dropped)."""
    wanted = set(tiers)
    return [tier for tier in TIERS if tier in wanted]


def safety_note(tiers: Iterable[str]) -> Text:
    """The note offers and assignments carry: what is allowed, what never is."""
    allowed = ordered(tiers)
    if allowed in ([], [OBSERVE_REPORT]):
        return dict(_OBSERVE_ONLY)
    note = {}
    for lang in ("en", "zh"):
        sep, colon = (", ", ": ") if lang == "en" else ("、", "：")
        lead = "You may" if lang == "en" else "可执行"
        labels = sep.join(CATALOGUE[tier].label[lang] for tier in allowed)
        end = "." if lang == "en" else "。"
        parts = [f"{lead}{colon}{labels}{end}", _GENERAL[lang]]
        if DETAIN_UNTIL_POLICE in allowed:
            parts.append(_HOLD[lang])
        note[lang] = (" " if lang == "en" else "").join(parts)
    return note
