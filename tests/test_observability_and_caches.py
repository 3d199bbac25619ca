"""The GC pause metric and the token cache, on their own (no database involved)."""

from __future__ import annotations

import gc

from prometheus_client import generate_latest

from app.auth.cache import PrincipalCache
from app.auth.principal import SYSTEM
from app.observability import Metrics


def test_gc_pauses_are_counted_per_generation_and_watching_stops():
    metrics = Metrics()
    stop = metrics.watch_garbage_collector()
    try:
        gc.collect()
    finally:
        stop()
    text = generate_latest(metrics.registry).decode()
    assert 'dispatch_gc_pause_seconds_count{generation="2"} 1.0' in text
    assert 'dispatch_gc_pause_seconds_bucket{generation="2",le="+Inf"} 1.0' in text
    gc.collect()  # no longer watched
    assert (
        'dispatch_gc_pause_seconds_count{generation="2"} 1.0'
        in generate_latest(metrics.registry).decode()
    )


def test_token_cache_forgets_on_clear_and_refuses_stale_or_expired_answers():
    cache = PrincipalCache(ttl_s=5)
    before = cache.generation
    cache.put("a", SYSTEM, before)
    assert cache.get("a") is SYSTEM
    cache.clear()  # a revocation committed
    assert cache.get("a") is None
    cache.put("a", SYSTEM, before)  # a lookup that started before the revocation
    assert cache.get("a") is None
    cache.put("b", SYSTEM, cache.generation, valid_for_s=-1)  # token already expired
    assert cache.get("b") is None
    off = PrincipalCache(ttl_s=0)  # DISPATCH_AUTH_CACHE_S=0: check every request
    off.put("a", SYSTEM, off.generation)
    assert off.get("a") is None
