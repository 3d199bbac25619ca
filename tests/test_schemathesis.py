"""The OpenAPI document is honest: Schemathesis drives a real server from it.

Every operation is called with examples generated from its schemas (valid and invalid),
then in sequences that follow the document's links (create, then read, change and act on
what was created). The run fails on a server error, a response that does not match its
schema, a status or header the document does not declare, and the other default checks.

The server is a fresh one on a database of its own, with a few objects already made so
that reads and actions have something to find. Schemathesis runs as its command-line tool
in a subprocess: this loop keeps serving while it works. The run is seeded and
deterministic, and bounded by examples per operation and a time budget: 80 s a database,
so about three minutes for both with the stateful phase (SCHEMATHESIS_MAX_EXAMPLES and
SCHEMATHESIS_MAX_TIME_S make it shorter or longer).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.harness import Harness, start_harness

pytestmark = pytest.mark.usefixtures("backend")

MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "25"))
MAX_TIME_S = int(os.environ.get("SCHEMATHESIS_MAX_TIME_S", "80"))
SEED = 20261121
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "ignored_auth",
    "unsupported_method",
    "use_after_free",
)


async def seed_objects(harness: Harness) -> None:
    """One of each object the document's operations read or act on."""
    station = await harness.make_station((31.2, 121.5))
    company = await harness.make_company()
    await harness.make_guard(company["id"])
    response = await harness.post(
        "/api/v1/units",
        {"call_sign": "SH-01", "station_id": station["id"], "kind": "patrol_car"},
    )
    assert response.status_code == 201, response.text
    await harness.make_incident((31.2, 121.5), role="admin")


async def run_schemathesis(harness: Harness, report: Path) -> tuple[int, str]:
    headers = await harness.headers("admin")
    command = [
        str(Path(sys.executable).with_name("st")),
        "run",
        f"{harness.base_url}/openapi.json",
        "--checks",
        ",".join(CHECKS),
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--seed",
        str(SEED),
        "--generation-deterministic",  # and so no example database between runs
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--report",
        "ndjson",
        "--report-ndjson-path",
        str(report),
        "--header",
        f"Authorization:{headers['Authorization']}",
    ]
    process = await asyncio.create_subprocess_exec(
        *command,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1"},
        cwd=report.parent,  # its own files (.schemathesis/) stay out of the checkout
    )
    try:
        async with asyncio.timeout(MAX_TIME_S + 120):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def summary(report: Path) -> dict[str, Any]:
    """What the run did, from its NDJSON events: the operations it tested, how many
    requests it made, and every answer that was a server error."""
    operations: set[str] = set()
    requests = 0
    server_errors: list[str] = []
    for line in report.read_text().splitlines():
        finished = json.loads(line).get("ScenarioFinished")
        if finished is None or finished["status"] == "skip":
            continue
        recorder = finished["recorder"]
        operations.add(recorder["label"])
        for interaction in (recorder.get("interactions") or {}).values():
            requests += 1
            response = interaction.get("response") or {}
            status = response.get("status_code", 0)
            if status >= 500 and status != 503:  # 503: the database, declared with Retry-After
                request = interaction["request"]
                server_errors.append(f"{status} {request['method']} {request['uri']}")
    return {"operations": operations, "requests": requests, "server_errors": server_errors}


async def test_schemathesis_finds_no_server_error_or_undocumented_answer(
    own_database_url: str, tmp_path: Path
) -> None:
    async with start_harness(own_database_url) as harness:
        await seed_objects(harness)
        report = tmp_path / "schemathesis.ndjson"
        code, output = await run_schemathesis(harness, report)
        spec = (await harness.client.get("/openapi.json")).json()
    assert code == 0, output[-20_000:]
    ran = summary(report)
    assert ran["server_errors"] == []
    documented = {
        f"{method.upper()} {path}" for path, item in spec["paths"].items() for method in item
    }
    # Every operation was exercised: not a run that tested nothing.
    assert documented <= ran["operations"], sorted(documented - ran["operations"])
    assert ran["requests"] > 10 * len(documented)
