"""The simulator's HTTP side: sign in as the admin, read guards, issue credentials, post."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

PAGE = 500
TOKEN_MARGIN_S = 60.0  # sign in again this long before the access token expires
CAD_SCOPES = ["incidents:read", "incidents:write", "police:act", "units:write", "events:read"]


class ServerUnavailable(Exception):
    """Nothing answers at the URL (or it never became ready)."""


class ApiError(Exception):
    """The server refused a request: `code` is `<status> <error code>`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = f"{status} {code}"


class Api:
    """REST calls as the signed-in admin, or as the CAD's integration key once created."""

    def __init__(self, client: httpx.AsyncClient, username: str, password: str) -> None:
        self.client = client
        self.username = username
        self.password = password
        self._token = ""
        self._token_until = 0.0
        self.cad_key: str | None = None
        self._cad_key_id: str | None = None

    async def wait_ready(self, timeout_s: float) -> None:
        """Return once /readyz answers 200; ServerUnavailable after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                if (await self.client.get("/readyz")).status_code == 200:
                    return
                problem = "the server is up but not ready (database or migrations)"
            except httpx.TransportError as exc:
                problem = f"cannot reach it ({type(exc).__name__})"
            if time.monotonic() >= deadline:
                raise ServerUnavailable(
                    f"no dispatch server ready at {self.client.base_url}: {problem}"
                )
            await asyncio.sleep(0.5)

    async def sign_in(self) -> None:
        response = await self._send(
            "POST",
            "/api/v1/auth/token",
            data={"username": self.username, "password": self.password},
        )
        body = _json(response)
        self._token = str(body["access_token"])
        self._token_until = time.monotonic() + float(body.get("expires_in", 900)) - TOKEN_MARGIN_S

    async def request(
        self, method: str, path: str, *, as_cad: bool = False, bearer: str | None = None,
        **kwargs: Any,
    ) -> Any:  # fmt: skip
        """The JSON answer (None for 204); ApiError for a 4xx/5xx. As the admin, the CAD
        (`as_cad`) or another integration key (`bearer`)."""
        if bearer is None and as_cad and self.cad_key:
            bearer = self.cad_key
        elif bearer is None:
            if time.monotonic() >= self._token_until:
                await self.sign_in()
            bearer = self._token
        headers = {"Authorization": f"Bearer {bearer}"}
        return _json(await self._send(method, path, headers=headers, **kwargs))

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.client.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServerUnavailable(
                f"lost the dispatch server at {self.client.base_url} ({type(exc).__name__})"
            ) from exc

    async def guards(self, company_id: str | None) -> list[dict[str, Any]]:
        """Every active guard (of one company, if given), following the cursor."""
        params: dict[str, Any] = {"status": "active", "limit": PAGE}
        if company_id:
            params["company_id"] = company_id
        found: list[dict[str, Any]] = []
        while True:
            page = await self.request("GET", "/api/v1/guards", params=params)
            found.extend(page["items"])
            if not page.get("next_cursor"):
                return found
            params["cursor"] = page["next_cursor"]

    async def issue_device_token(self, guard_id: str) -> dict[str, Any]:
        return dict(await self.request("POST", f"/api/v1/guards/{guard_id}/tokens"))

    async def revoke_device_token(self, guard_id: str, token_id: str) -> None:
        await self.request("DELETE", f"/api/v1/guards/{guard_id}/tokens/{token_id}")

    async def create_cad_key(self, run_tag: str) -> None:
        """An integration key with the scopes a police CAD needs, used for its posts."""
        body = {"name": f"simulated-cad-{run_tag}", "scopes": CAD_SCOPES}
        created = await self.request("POST", "/api/v1/api-keys", json=body)
        self.cad_key, self._cad_key_id = str(created["key"]), str(created["id"])

    async def revoke_cad_key(self) -> None:
        if self._cad_key_id is not None:
            await self.request("DELETE", f"/api/v1/api-keys/{self._cad_key_id}")
            self._cad_key_id = None

    async def post_incident(self, body: dict[str, Any], *, as_cad: bool) -> dict[str, Any]:
        return dict(await self.request("POST", "/api/v1/incidents", json=body, as_cad=as_cad))

    async def incident(self, incident_id: str) -> dict[str, Any]:
        return dict(await self.request("GET", f"/api/v1/incidents/{incident_id}", as_cad=True))

    async def police_step(self, incident_id: str, action: str, body: dict[str, Any]) -> None:
        """`ack`, `arrived` or `handover` on the incident's escalation, as the CAD."""
        path = f"/api/v1/incidents/{incident_id}/police/{action}"
        await self.request("POST", path, json=body, as_cad=True)


def _json(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            code, message = str(error["code"]), str(error["message"])
        except (ValueError, KeyError, TypeError):
            code, message = "http_error", response.text[:200]
        raise ApiError(response.status_code, code, message)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()
