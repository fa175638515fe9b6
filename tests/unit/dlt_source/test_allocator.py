"""The runner's malloc arena cap, seen in glibc's own account of its heaps."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")

# Twelve threads allocate at once, as a load's readers do; glibc's malloc_info then lists one
# <heap> per arena in use.
CHILD = """
import ctypes, ctypes.util, sys, tempfile, threading
if sys.argv[1] == "capped":
    from octopush_dlt.allocator import keep_few_malloc_arenas
    keep_few_malloc_arenas()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype = ctypes.c_void_p
libc.fopen.restype = ctypes.c_void_p
start = threading.Barrier(12)
held = []
def allocate():
    start.wait()
    held.extend(libc.malloc(4096) for _ in range(200))
threads = [threading.Thread(target=allocate) for _ in range(12)]
for thread in threads: thread.start()
for thread in threads: thread.join()
with tempfile.NamedTemporaryFile(suffix=".xml") as out:
    stream = libc.fopen(out.name.encode(), b"w")
    libc.malloc_info(0, ctypes.c_void_p(stream))
    libc.fclose(ctypes.c_void_p(stream))
    print(open(out.name).read().count("<heap nr="))
"""


def _heaps(mode: str, **environment: str) -> int:
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, mode],
        env=env | environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return int(done.stdout.strip())


def test_a_load_keeps_its_threads_to_two_malloc_arenas():
    assert _heaps("capped") <= 2
    assert _heaps("uncapped") > 2


def test_malloc_arena_max_in_the_environment_is_left_to_decide():
    assert _heaps("capped", MALLOC_ARENA_MAX="6") > 2
