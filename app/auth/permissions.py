"""Roles, integration scopes and the permissions they grant: the one table of who may do what."""

from __future__ import annotations

ROLES = ("admin", "operator", "supervisor", "company_manager")
DEVICE_ROLES = ("guard", "integration")

# Each route requires one of these; a role holds a set, an API key holds scopes.
PERMISSIONS = frozenset(
    {
        "registry:read",  # companies, guards, stations, units
        "companies:write",
        "guards:write",
        "guards:tokens",  # issue / revoke guard device tokens
        "guards:locate",  # dispatchable guards near a point (/guards/nearby)
        "positions:read",  # every on-duty guard's position and state (consoles' map)
        "stations:write",
        "units:write",
        "incidents:read",
        "incidents:write",  # report an incident
        "incidents:operate",  # console actions: cancel, resolve, close, escalate, assign
        "police:act",  # police side: ack, arrived, handover, instruction, close
        "webhooks:manage",
        "events:read",  # the live stream
        "users:manage",
        "audit:read",  # the security audit log (GET /audit)
        "guards:track",  # a guard's location history (GET /guards/{id}/track; audited)
        "metrics:read",  # /metrics (a Prometheus scraper's key)
        "alarms:write",  # an alarm receiver: POST /alarms, cancel the alarms it sent
        "alarms:read",  # alarm accounts (sites, keyholder contacts) and every alarm received
        "alarm_accounts:write",  # add, change, suspend alarm accounts
        "reports:read",  # response reports, the companies view, points (managers: own company)
        "supervision:write",  # commend or complain about a guard's part in an incident
    }
)

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": PERMISSIONS,
    "operator": frozenset(
        {
            "registry:read",
            "guards:locate",
            "positions:read",
            "units:write",
            "incidents:read",
            "incidents:write",
            "incidents:operate",
            "police:act",
            "events:read",
            "alarms:read",
        }
    ),
    "supervisor": frozenset(
        {
            "registry:read",
            "companies:write",
            "guards:write",
            "guards:tokens",
            "guards:locate",
            "positions:read",
            "guards:track",
            "incidents:read",
            "events:read",
            "audit:read",
            "alarms:read",
            "alarm_accounts:write",
            "reports:read",
            "supervision:write",
        }
    ),
    # positions:read and guards:track limited to their own company's guards.
    # alarms:read and alarm_accounts:write limited to their own company's accounts and alarms.
    "company_manager": frozenset(
        {
            "registry:read",
            "guards:write",
            "guards:tokens",
            "positions:read",
            "guards:track",
            "alarms:read",
            "alarm_accounts:write",
            "reports:read",
        }
    ),
    "guard": frozenset(),
}

# What an integration API key may be granted (scopes are a subset of permissions).
INTEGRATION_SCOPES = frozenset(
    {
        "registry:read",
        "guards:locate",
        "positions:read",
        "units:write",
        "incidents:read",
        "incidents:write",
        "police:act",
        "webhooks:manage",
        "events:read",
        "metrics:read",
        "alarms:write",
        "alarms:read",
        "reports:read",
        "supervision:write",
    }
)
