"""Two settings of the native libraries under the engines, made before any model loads.

Measured with `bench/sessions.py` (10 sessions against 1, one worker process, tiny.en on
the CPU): without them the worker's memory grew about 45 MB per extra session, and kept
growing while the sessions played.

* oneDNN (CTranslate2's CPU kernels) caches a compiled primitive for every input shape it
  has seen, with its scratch memory. Every pass has a buffer of another length, so the
  cache only grows; it never hits. `ONEDNN_PRIMITIVE_CACHE_CAPACITY=0` turns it off: the
  worker then held 8 MB per extra session, at the same latency.
* glibc gives each thread that allocates an arena of its own (up to 8 per core), and the
  arenas keep what they once held. Two arenas brought it to about 3 MB per extra session.

Either can be set otherwise in the environment; what is set there wins.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

M_ARENA_MAX = -8  # glibc's malloc.h
ARENAS = 2


def limit_native_caches() -> None:
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "0")
    if "MALLOC_ARENA_MAX" in os.environ:
        return  # glibc read it at start
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return  # not glibc: its allocator is its own
    if not libc.mallopt(M_ARENA_MAX, ARENAS):
        log.debug("mallopt(M_ARENA_MAX) was refused")
