"""Fewer malloc arenas for a load's threads, so that big pages do not fragment memory.

glibc's malloc gives threads arenas of their own, up to eight per core. A load reads pages on
twelve threads; when the pages are tens of MB (a server sending pages just under the size cap),
the freed memory of each page stays split across the arenas instead of being reused: a first
load of 30 such pages peaked at 1,470 MiB, and 916 MiB with two arenas
(``tests/benchmarks/hostile_memory.py``). Ordinary pages load as fast with two (``make bench``:
100k conversations in 2.82 s against 2.72 s at 100 a page, 1.14 against 1.21 s at 1,000).

glibc fixes its arena limit the first time a process needs more arenas than it has, so the
setting only helps if made early: the runner makes it at its first load, once per process.
``MALLOC_ARENA_MAX`` in the environment, whatever its value, leaves the choice to it.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

logger = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter (malloc.h)
_done = False


def keep_few_malloc_arenas() -> None:
    """Cap glibc's malloc arenas at :data:`ARENAS`, once; nothing elsewhere."""
    global _done  # noqa: PLW0603 - a process-wide setting, made once
    if _done:
        return
    _done = True
    if os.environ.get("MALLOC_ARENA_MAX") is not None or platform.libc_ver()[0] != "glibc":
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    if not ctypes.CDLL(name).mallopt(_M_ARENA_MAX, ARENAS):
        logger.debug("mallopt(M_ARENA_MAX, %d) was refused", ARENAS)
