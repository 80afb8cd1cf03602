"""``Store.stats()``: store-wide numbers from one published state, and this process's own."""

from __future__ import annotations

import time
from typing import Any

from .cache import ReadCache
from .format import W_HITS, W_MISSES
from .log import H_EXP, total_size
from .view import View, snapshot


def stats(
    view: View, cache: ReadCache, process: dict[str, int], pending: list[int]
) -> dict[str, Any]:
    """Store-wide counts and sizes of ``view``'s state at the top level; this process's own
    counters (the read cache's, and ``process``) under ``"process"``. The store-wide
    ``hits`` and ``misses`` are the file's counters plus this process's ``pending`` counts not
    yet added to them."""
    meta = view.meta
    live, dead, keys = meta.live_bytes, meta.dead_bytes, meta.key_count
    if meta.ttl_count:
        now = time.time()
        live_now = 0
        keys = 0
        # The same state as ``meta`` and committed records only: mixing two states would
        # make the difference below meaningless (even negative).
        for _, _, _, hdr in snapshot(view, now):
            if not (hdr[H_EXP] and hdr[H_EXP] <= now):
                keys += 1
                live_now += total_size(hdr)
        dead += live - live_now
        live = live_now
    return {
        "keys": keys,
        "file_bytes": view.file.file_size(),
        "live_bytes": live,
        "dead_bytes": dead,
        "log_bytes": meta.log_end,
        "index_capacity": meta.index_capacity,
        "evictions": meta.evictions,
        "max_bytes": meta.max_bytes,
        "generation": meta.gen,
        "hits": view.words[W_HITS] + pending[0],
        "misses": view.words[W_MISSES] + pending[1],
        "process": {
            "cache_entries": len(cache.entries),
            "cache_bytes": cache.used,
            **process,
        },
    }
