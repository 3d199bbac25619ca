"""Structured logs with request and incident ids, and Prometheus metrics."""

from __future__ import annotations

import gc
import json
import logging
import re
import time
import uuid
from bisect import bisect_left
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from itertools import accumulate
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STANDARD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; `extra={...}` fields (incident_id, guard_id…) are kept."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD_ATTRS and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    handler.formatter.converter = time.gmtime  # type: ignore[union-attr]
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
HUMAN_BUCKETS = (1.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class Metrics:
    """The service's Prometheus metrics, on a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "dispatch_http_requests_total",
            "HTTP requests",
            ["method", "route", "status"],
            registry=r,
        )
        self.http_latency = Histogram(
            "dispatch_http_request_seconds", "HTTP request latency", ["method", "route"], registry=r
        )
        self.events = Counter("dispatch_events_total", "Events recorded", ["type"], registry=r)
        self.guard_connections = Gauge(
            "dispatch_guard_connections", "Open guard websocket connections", registry=r
        )
        self.stream_connections = Gauge(
            "dispatch_stream_connections", "Open /ws/events connections", registry=r
        )
        self.location_pings = Counter(
            "dispatch_location_pings_total", "Location pings", ["outcome"], registry=r
        )
        self.indexed_guards = Gauge(
            "dispatch_indexed_guards", "Guards in the live index", registry=r
        )
        self.webhook_attempts = Counter(
            "dispatch_webhook_attempts_total", "Webhook delivery attempts", ["outcome"], registry=r
        )

        # The response chain and the machinery under it (seconds; README "Metrics").
        def stage(name: str, doc: str, buckets: tuple[float, ...] = STAGE_BUCKETS) -> Histogram:
            return Histogram(name, doc, registry=r, buckets=buckets)

        self.received_to_first_offer = stage(
            "dispatch_received_to_first_offer_seconds", "Incident received → first offer stored"
        )
        self.offer_to_delivered = stage(
            "dispatch_offer_to_delivered_seconds", "Offer stored → its frame sent to the phone"
        )
        self.delivered_to_accepted = stage(
            "dispatch_delivered_to_accepted_seconds",
            "Offer frame sent → the guard's accept",
            HUMAN_BUCKETS,
        )
        self.received_to_escalated = stage(
            "dispatch_received_to_escalated_seconds",
            "Incident received → escalation to a police station",
            HUMAN_BUCKETS,
        )
        self.timer_lateness = stage(
            "dispatch_timer_lateness_seconds", "Timer fired after its due time, by this much"
        )
        self.outbox_lag = stage(
            "dispatch_outbox_lag_seconds", "Guard frame committed → written to the guard's socket"
        )
        self.notify_lag = stage(
            "dispatch_notify_lag_seconds", "NOTIFY sent by a replica → heard by this one"
        )
        self.feed_lag = stage(
            "dispatch_event_feed_lag_seconds", "Event recorded → published to this replica"
        )
        self.gc_pauses = GcPauses()
        r.register(self.gc_pauses)

    def watch_garbage_collector(self) -> Callable[[], None]:
        """Time every collection (a callback per collection, ~1 µs); returns the function
        that stops watching."""
        gc.callbacks.append(self.gc_pauses.observe)
        return lambda: gc.callbacks.remove(self.gc_pauses.observe)


class GcPauses(Collector):
    """`dispatch_gc_pause_seconds{generation}`: how long the loop stood still in Python's
    cyclic garbage collector. The gc callback only adds numbers in plain lists: taking a
    metric's lock there could deadlock if a collection began while /metrics held it."""

    BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

    def __init__(self) -> None:
        self._counts = {g: [0] * (len(self.BUCKETS) + 1) for g in ("0", "1", "2")}
        self._sums = {g: 0.0 for g in ("0", "1", "2")}
        self._started = 0.0

    def observe(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = str(info["generation"])
        self._sums[generation] += pause
        self._counts[generation][bisect_left(self.BUCKETS, pause)] += 1

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "dispatch_gc_pause_seconds",
            "Time the event loop stood still in Python's cyclic garbage collector",
            labels=["generation"],
        )
        for generation, counts in self._counts.items():
            cumulative = list(accumulate(counts))
            buckets = [(str(le), n) for le, n in zip(self.BUCKETS, cumulative, strict=False)]
            buckets.append(("+Inf", cumulative[-1]))
            family.add_metric([generation], buckets, self._sums[generation])
        yield family


class RequestContextMiddleware:
    """Pure ASGI: a request id per HTTP request (X-Request-ID in and out) and HTTP metrics."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        # The 500 handler runs outside this middleware, after the context var is reset.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", "unmatched")
            method = scope["method"]
            self.metrics.http_requests.labels(method, path, str(status)).inc()
            self.metrics.http_latency.labels(method, path).observe(time.perf_counter() - started)
            request_id_var.reset(token)
