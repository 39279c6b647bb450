"""Per-thread control of numpy's BLAS threads, where the BLAS allows it."""

from __future__ import annotations

import contextlib
import ctypes
import functools
from collections.abc import Callable, Iterator
from pathlib import Path


def single_threaded_blas() -> None:
    """Make the calling thread's BLAS calls use one thread (a thread pool's initializer).

    Many small matmuls run in parallel Python threads go faster this way than each one
    waking the BLAS's own threads. Needs OpenBLAS ≥ 0.3.27 (numpy's wheels); elsewhere it
    does nothing.
    """
    set_local = _openblas_set_num_threads_local()
    if set_local is not None:
        set_local(1)


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS calls made by this thread inside the block use one thread, as before after it.

    For a matmul as small as one short query's, the BLAS's other threads cost more than they
    save, and on a busy machine the call waits for whichever of them is not scheduled.
    """
    set_local = _openblas_set_num_threads_local()
    if set_local is None:
        yield
        return
    previous = set_local(1)
    try:
        yield
    finally:
        set_local(previous)


@functools.cache
def _openblas_set_num_threads_local() -> Callable[[int], int] | None:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    libraries = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.lower()}
    for path in sorted(libraries):
        try:
            function = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        function.argtypes = [ctypes.c_int]
        function.restype = ctypes.c_int
        return function
    return None
