"""SQLAlchemy models; importing this package registers every table on `Base.metadata`."""

from app.models.auth import ApiKey, GuardToken, User
from app.models.base import Base
from app.models.delivery import GuardChannel, GuardMessage, Timer
from app.models.dispatch import Assignment, GuardEngagement, Offer
from app.models.incident import Event, Incident
from app.models.presence import GuardPresence, PositionHistory
from app.models.registry import Guard, PoliceStation, PoliceUnit, SecurityCompany

__all__ = [
    "ApiKey",
    "Assignment",
    "GuardChannel",
    "GuardEngagement",
    "GuardMessage",
    "Offer",
    "Timer",
    "Base",
    "Event",
    "Guard",
    "GuardPresence",
    "GuardToken",
    "Incident",
    "PoliceStation",
    "PoliceUnit",
    "PositionHistory",
    "SecurityCompany",
    "User",
]
