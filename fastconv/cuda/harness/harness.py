"""CPU harness for the fastconv CUDA kernels (tests only; not installed).

``build(directory)`` compiles ``harness.cpp`` -- which #includes the very ``.cu`` files
CuPy compiles for the GPU -- with g++ into a shared library, and ``HarnessLauncher``
runs kernels from it with the same launch interface ``fastconv._cupy`` uses for
``cupy.RawModule`` functions::

    launcher.launch(kernel, dtype, grid, block, args, shared_mem=0)

so the Python orchestration in ``_cupy.py`` can run end-to-end on NumPy arrays.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CUDA_DIR = os.path.dirname(HERE)

_TAGS = {np.dtype(t): t for t in ("float32", "float64", "complex64", "complex128", "int64")}


def _sources():
    return [os.path.join(HERE, "harness.cpp"), os.path.join(HERE, "cuda_shim.h")] + sorted(
        os.path.join(CUDA_DIR, f) for f in os.listdir(CUDA_DIR)
        if f.endswith((".cu", ".cuh")))


def build(directory=None, extra_flags=()):
    """Compile the harness; return the path of the shared library.

    With ``directory=None`` the library is cached in the temp directory under a hash of
    the sources, flags and compiler, so several test modules share one build.
    """
    cxx = os.environ.get("CXX") or shutil.which("g++") or "c++"
    cmd = [cxx, "-O2", "-shared", "-fPIC", "-std=c++14", "-x", "c++", "-Wall", "-Werror",
           "-Wno-unknown-pragmas", "-I", CUDA_DIR, *extra_flags]
    if directory is None:
        h = hashlib.sha256(" ".join(cmd).encode())
        for src in _sources():
            with open(src, "rb") as f:
                h.update(f.read())
        directory = os.path.join(tempfile.gettempdir(), "fastconv-harness-" + h.hexdigest()[:16])
        lib = os.path.join(directory, "fastconv_cuda_harness.so")
        if os.path.exists(lib):
            return lib
        os.makedirs(directory, exist_ok=True)
    lib = os.path.join(directory, "fastconv_cuda_harness.so")
    tmp = f"{lib}.{os.getpid()}.tmp"
    cmd += [os.path.join(HERE, "harness.cpp"), "-o", tmp]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError("harness build failed:\n" + " ".join(cmd) + "\n" + res.stderr)
    os.replace(tmp, lib)  # atomic: concurrent builders never load a half-written file
    return lib


class HarnessLauncher:
    """Runs ``fc_<kernel><T>`` launches on the CPU; records every launch in ``.launches``."""

    def __init__(self, lib_path):
        self.lib = ctypes.CDLL(lib_path)
        self.launches = []

    def launch(self, kernel, dtype, grid, block, args, shared_mem=0):
        dtype = np.dtype(dtype)
        name = f"fch_{kernel[3:] if kernel.startswith('fc_') else kernel}_{_TAGS[dtype]}"
        fn = getattr(self.lib, name)
        ptrs, ints = [], []
        for a in args:
            if isinstance(a, np.ndarray):
                if not a.flags.c_contiguous:
                    raise ValueError(f"{kernel}: array argument is not C-contiguous")
                if a.dtype != dtype and a.dtype != np.int64:
                    raise TypeError(f"{kernel}<{dtype}>: array argument of dtype {a.dtype}")
                ptrs.append(a.ctypes.data)
            else:
                ints.append(int(a))
        launch = (ctypes.c_longlong * 3)(int(grid), int(block), int(shared_mem))
        p = (ctypes.c_void_p * max(1, len(ptrs)))(*ptrs)
        iv = (ctypes.c_longlong * max(1, len(ints)))(*ints)
        rc = fn(launch, p, iv)
        if rc != 0:
            raise RuntimeError(f"harness launch of {name} failed (rc={rc}): grid={grid} "
                               f"block={block} shared_mem={shared_mem}")
        self.launches.append((kernel, dtype, int(grid), int(block), int(shared_mem)))
