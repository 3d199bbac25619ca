"""The OpenAPI document declares the answers the server really gives, and its schemas
accept what the server accepts and refuse what it refuses (issue 10 §8)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import Harness

ERROR_REF = {"$ref": "#/components/schemas/Error"}


@pytest.fixture
async def spec(harness: Harness) -> dict[str, Any]:
    response = await harness.client.get("/openapi.json")
    assert response.status_code == 200
    return dict(response.json())


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in spec["paths"].items()
        for method, operation in item.items()
    ]


def error_schema(operation: dict[str, Any], status: int) -> Any:
    return operation["responses"][str(status)]["content"]["application/json"]["schema"]


async def test_every_api_operation_declares_its_error_answers_in_the_error_shape(
    spec: dict[str, Any],
) -> None:
    api = [op for op in operations(spec) if op[1].startswith("/api/v1/")]
    assert len(api) >= 55
    for method, path, operation in api:
        declared = operation["responses"]
        where = f"{method} {path}"
        assert "503" in declared, where
        assert declared["503"]["headers"]["Retry-After"]["required"] is True, where
        if path != "/api/v1/auth/token":
            assert {"401", "403"} <= set(declared), where
            assert declared["401"]["headers"]["WWW-Authenticate"]["required"] is True, where
        if "{" in path:
            assert "404" in declared, where
        if "requestBody" in operation:
            assert {"413", "422"} <= set(declared), where
        for status in declared:
            if int(status) >= 400:
                assert error_schema(operation, int(status)) == ERROR_REF, (where, status)
    # FastAPI's own validation error shape is not what the service sends.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["Error"]["properties"]["error"]
    assert error["required"] == ["code", "message"]


async def test_conflicts_and_sign_in_limits_are_declared_where_they_happen(
    spec: dict[str, Any],
) -> None:
    paths = spec["paths"]
    for method, path in [
        ("post", "/api/v1/companies"),
        ("patch", "/api/v1/guards/{guard_id}"),
        ("post", "/api/v1/units"),
        ("post", "/api/v1/incidents"),
        ("post", "/api/v1/incidents/{incident_id}/cancel"),
        ("post", "/api/v1/incidents/{incident_id}/assign"),
        ("post", "/api/v1/incidents/{incident_id}/police/ack"),
        ("post", "/api/v1/incidents/{incident_id}/instructions"),
        ("post", "/api/v1/intel/{intel_id}/triage"),
        ("post", "/api/v1/webhooks/deliveries/{delivery_id}/replay"),
        ("post", "/api/v1/users"),
    ]:
        assert "409" in paths[path][method]["responses"], (method, path)
    assert "409" not in paths["/api/v1/incidents/{incident_id}"]["get"]["responses"]
    token = paths["/api/v1/auth/token"]["post"]["responses"]
    assert {"401", "413", "422", "429", "503"} <= set(token)
    assert token["429"]["headers"]["Retry-After"]["required"] is True
    # /readyz answers 503 with its own body, /healthz never touches the database.
    readyz = paths["/readyz"]["get"]["responses"]["503"]["content"]["application/json"]
    assert readyz["schema"] == {"$ref": "#/components/schemas/Readiness"}
    assert set(paths["/healthz"]["get"]["responses"]) == {"200"}


async def test_parameters_declare_what_validation_enforces(spec: dict[str, Any]) -> None:
    listing = {
        p["name"]: p["schema"] for p in spec["paths"]["/api/v1/incidents"]["get"]["parameters"]
    }
    cursor = listing["cursor"]["anyOf"][0]
    assert cursor["minLength"] == 1 and cursor["maxLength"] == 200
    assert listing["limit"]["minimum"] == 1 and listing["limit"]["maximum"] == 500
    assert listing["since"]["anyOf"][0] == {"type": "string", "format": "date-time"}
    body = spec["components"]["schemas"]["IncidentCreate"]["properties"]
    assert body["priority"] == {"type": "integer", "minimum": 1, "maximum": 4, "title": "Priority"}


@pytest.mark.usefixtures("backend")
async def test_the_server_refuses_what_the_document_refuses_and_accepts_the_rest(
    harness: Harness, area: tuple[float, float]
) -> None:
    for query in ({"cursor": ""}, {"until": "0.5"}, {"since": "2026-11-21T10:00:00"}):
        response = await harness.get("/api/v1/incidents", params=query)
        assert response.status_code == 422, (query, response.text)
        assert response.json()["error"]["code"] == "validation_error"
        assert next(iter(query)) in response.json()["error"]["message"]
    response = await harness.get("/api/v1/incidents", params={"since": "2026-11-21T10:00:00Z"})
    assert response.status_code == 200
    body = {
        "category": "theft",
        "location": {"lat": area[0], "lon": area[1]},
        "description": "bicycle stolen at the north gate",
    }
    # JSON Schema counts 4.0 as an integer: the server takes it as 4; a string or a
    # fraction is refused, as the document says.
    accepted = await harness.post("/api/v1/incidents", {**body, "priority": 4.0}, role="operator")
    assert accepted.status_code == 201, accepted.text
    assert accepted.json()["priority"] == 4
    for priority in ("4", 3.5, True):
        refused = await harness.post("/api/v1/incidents", {**body, "priority": priority})
        assert refused.status_code == 422, (priority, refused.text)
        assert refused.json()["error"]["details"][0]["field"] == "priority"
    company = {"name": "Contract Co", "licence_no": "LIC-CONTRACT-0", "licence_expires_on": 0}
    refused = await harness.post("/api/v1/companies", company)
    assert refused.status_code == 422 and "licence_expires_on" in refused.text
