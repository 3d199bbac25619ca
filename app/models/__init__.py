"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from app.models.alarm import Alarm, AlarmAccount
from app.models.audit import AuditRecord, ChainHead
from app.models.auth import ApiKey, GuardToken, User
from app.models.base import Base
from app.models.broadcast import Broadcast, BroadcastRecipient
from app.models.delivery import GuardChannel, GuardMessage, Timer
from app.models.dispatch import Assignment, GuardEngagement, Offer
from app.models.escalation import Escalation
from app.models.incident import Event, Incident
from app.models.intel import IntelReport
from app.models.presence import GuardPresence, PositionHistory, Replica
from app.models.registry import Guard, PoliceStation, PoliceUnit, SecurityCompany
from app.models.supervision import ExpiryNotice, Feedback, PointAward
from app.models.webhook import WebhookAttempt, WebhookDelivery, WebhookSubscription

__all__ = [
    "Alarm",
    "AlarmAccount",
    "ApiKey",
    "Assignment",
    "AuditRecord",
    "ChainHead",
    "GuardChannel",
    "GuardEngagement",
    "GuardMessage",
    "Offer",
    "Timer",
    "Base",
    "Broadcast",
    "BroadcastRecipient",
    "Escalation",
    "Event",
    "ExpiryNotice",
    "Feedback",
    "Guard",
    "GuardPresence",
    "GuardToken",
    "Incident",
    "IntelReport",
    "PointAward",
    "PoliceStation",
    "PoliceUnit",
    "PositionHistory",
    "Replica",
    "SecurityCompany",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
]
