"""Reused memory for large results: fresh pages cost more than the convolution that fills them.

Why.  A result of a few MiB or more comes from ``mmap`` (glibc's dynamic threshold stops at
32 MiB, so a 2048x2048 float64 image always does), and every one of its pages is then faulted
in and zeroed by the kernel on first write.  Measured on the 2-core build VM: filling a fresh
32 MiB array takes 7-8 ms with transparent huge pages (25 ms without), against 3 ms for
memory already mapped; the 2-D 5x5 float64 direct convolution that fills it takes ~8 ms.

What.  :func:`empty` hands out arrays of at least :data:`MIN_BYTES` from a small pool of
buffers that earlier results have released.  The array handed out is a plain, C-contiguous,
page-aligned ``numpy.ndarray``; its ``base`` is a :class:`_Lease` (an ndarray view of the
pooled buffer) and the buffer returns to the pool only when the last array or view that uses
it is garbage, so a result stays valid for as long as anything references it, exactly like
``numpy.empty``'s memory.  Buffers are sized in whole multiples of :data:`GRANULE` (2 MiB,
a huge page) so shapes that differ a little share them.

Bounds.  At most :data:`POOL_BYTES` of idle buffers are kept (default: the smaller of 512 MiB
and 1/8 of physical memory; environment ``FASTCONV_POOL_BYTES``, ``0`` turns the pool off),
oldest dropped first; :func:`release` frees them all.  Thread-safe: every pool operation holds
one lock.  A buffer released by a garbage collection that runs inside a pool operation of the
same thread (which already holds the lock) is simply freed instead of pooled.
"""
import collections
import contextlib
import math
import mmap
import os
import threading

import numpy as np

__all__ = ["empty", "release", "info"]

#: Results smaller than this come from ``numpy.empty`` (their pages are recycled by malloc).
MIN_BYTES = 4 << 20
#: Pooled buffers are whole multiples of this many bytes.
GRANULE = 2 << 20


def _default_pool_bytes():
    env = os.environ.get("FASTCONV_POOL_BYTES")
    if env is not None:
        try:
            return max(int(float(env)), 0)
        except ValueError:
            pass
    try:
        phys = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        phys = 4 << 30
    return min(512 << 20, phys // 8)


#: Most bytes of idle buffers kept for reuse (0: no pool).
POOL_BYTES = _default_pool_bytes()

_lock = threading.Lock()
_inside = threading.local()         # .on: this thread holds _lock
_idle = collections.OrderedDict()   # buffer size -> [anonymous mmaps], oldest key first
_idle_bytes = 0
_stats = {"hits": 0, "misses": 0}


class _Lease(np.ndarray):
    """An ndarray view of one pooled buffer (``_fc_raw``) that gives it back when garbage."""

    def __del__(self):
        raw = self.__dict__.get("_fc_raw")
        if raw is not None:
            self.__dict__["_fc_raw"] = None
            try:
                _put(raw)
            except Exception:  # noqa: BLE001 - interpreter shutdown: let the memory go
                pass


@contextlib.contextmanager
def _locked():
    """Hold the pool lock, marking this thread as inside (see :func:`_put`)."""
    with _lock:
        _inside.on = True
        try:
            yield
        finally:
            _inside.on = False


def _put(raw):
    global _idle_bytes
    if getattr(_inside, "on", False):   # a collection inside a pool operation: just free it
        return
    size = len(raw)
    if size > POOL_BYTES:
        return
    with _locked():
        _idle.setdefault(size, []).append(raw)
        _idle.move_to_end(size)
        _idle_bytes += size
        while _idle_bytes > POOL_BYTES and _idle:
            k, lst = next(iter(_idle.items()))
            _idle_bytes -= len(lst.pop(0))
            if not lst:
                del _idle[k]


def _get(size):
    global _idle_bytes
    with _locked():
        lst = _idle.get(size)
        if lst:
            raw = lst.pop()
            if not lst:
                del _idle[size]
            _idle_bytes -= size
            _stats["hits"] += 1
            return raw
        _stats["misses"] += 1
    # private anonymous memory (page aligned; pages appear on first write). Not mmap's
    # default MAP_SHARED: shared anonymous memory is shmem, which transparent huge pages
    # skip unless shmem_enabled says otherwise (measured on the build VM: a fresh 12 MiB
    # buffer faulted in 3072 small pages, 8-17 ms, against 6 huge pages, 1-3 ms, private)
    flags = getattr(mmap, "MAP_PRIVATE", 0) | getattr(mmap, "MAP_ANONYMOUS", 0)
    raw = mmap.mmap(-1, size, flags=flags) if flags else mmap.mmap(-1, size)
    if hasattr(mmap, "MADV_HUGEPAGE"):
        try:
            raw.madvise(mmap.MADV_HUGEPAGE)   # as numpy does for large arrays
        except OSError:
            pass
    return raw


def empty(shape, dtype, small=np.empty):
    """An uninitialised C-contiguous array, like ``numpy.empty(shape, dtype)``; large ones
    reuse a released buffer of the pool instead of fresh pages (see the module notes).
    Arrays the pool does not serve come from ``small(shape, dtype)`` (e.g. an allocator
    with a stricter alignment; pooled buffers are page aligned)."""
    dtype = np.dtype(dtype)
    if isinstance(shape, tuple) and all(type(s) is int for s in shape):
        pass    # the engines' own tuples (np.ndim and the int() pass were ~1.5 us a call)
    else:
        shape = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    nbytes = dtype.itemsize * math.prod(shape)
    if POOL_BYTES <= 0 or nbytes < MIN_BYTES or nbytes > POOL_BYTES:
        return small(shape, dtype)
    size = -(-nbytes // GRANULE) * GRANULE
    raw = _get(size)
    # numpy keeps the mmap itself as the lease's base (not an ndarray), so the result's base
    # chain stops at the lease: the buffer is given back only when no view is left
    lease = np.ndarray.__new__(_Lease, shape, dtype, buffer=raw)
    lease._fc_raw = raw
    return lease.view(np.ndarray)


def release():
    """Free every idle pooled buffer now."""
    global _idle_bytes
    with _locked():
        _idle.clear()
        _idle_bytes = 0


def info():
    """``{'idle_bytes', 'idle_buffers', 'hits', 'misses', 'limit'}`` of the pool."""
    with _locked():
        return {"idle_bytes": _idle_bytes,
                "idle_buffers": sum(len(v) for v in _idle.values()),
                "hits": _stats["hits"], "misses": _stats["misses"], "limit": POOL_BYTES}
