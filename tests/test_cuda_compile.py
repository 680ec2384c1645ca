"""Every fastconv/cuda/*.cu compiles with nvcc for sm_80 and sm_90 in all five dtypes
(explicit instantiations under FC_EXPLICIT_INSTANTIATE), in the form CuPy compiles it:
the source with its headers expanded by fastconv._cupy._source and no include path.
ptxas must report no register spills and every kernel's entry."""
import glob
import os
import re
import shutil
import subprocess

import pytest

from fastconv import _cupy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA_DIR = os.path.join(ROOT, "fastconv", "cuda")
SOURCES = sorted(glob.glob(os.path.join(CUDA_DIR, "*.cu")))

pytestmark = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not installed")


def test_sources_found():
    assert {os.path.basename(s) for s in SOURCES} == set(_cupy._FILE_KERNELS)


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    """Start nvcc for every source at once (they take seconds each); name -> result."""
    procs = {}
    for src in SOURCES:
        name = os.path.basename(src)
        d = tmp_path_factory.mktemp(name.replace(".", "_"))
        expanded = d / name
        expanded.write_text(_cupy._source(name))
        cmd = ["nvcc", "-gencode", "arch=compute_80,code=sm_80",
               "-gencode", "arch=compute_90,code=sm_90", "-std=c++14",
               "-Werror", "all-warnings", "-DFC_EXPLICIT_INSTANTIATE", "-Xptxas", "-v",
               "-c", str(expanded), "-o", str(d / "k.o")]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                       text=True, cwd=str(d))
    return {name: (p.wait(), p.communicate()[1]) for name, p in procs.items()}


@pytest.mark.parametrize("src", SOURCES, ids=os.path.basename)
def test_nvcc_sm80_sm90(src, compiled):
    name = os.path.basename(src)
    rc, log = compiled[name]
    assert rc == 0, log
    for arch in ("sm_80", "sm_90"):
        for k in _cupy._FILE_KERNELS[name]:
            entries = re.findall(rf"entry function '_Z\d+{k}I\w+' for '{arch}'", log)
            assert len(entries) == len(_cupy._CTYPES), (k, arch, log)
    spills = [int(n) for n in re.findall(r"(\d+) bytes spill stores", log)]
    assert spills and max(spills) == 0, log
    # blocks of FC_MAX_THREADS (256) threads must fit the 65536-register file
    regs = [int(n) for n in re.findall(r"Used (\d+) registers", log)]
    assert regs and max(regs) * 256 <= 65536, log


# ---------------------------------------------------------------------------- NVRTC
# What cupy.RawModule does: NVRTC compiles the expanded source with name expressions for
# one dtype, and the lowered (mangled) names are looked up.  Runs wherever libnvrtc is
# found (CUDA toolkit, or the nvidia-cuda-nvrtc-cu12 wheel); no GPU needed.

def _find_nvrtc():
    import ctypes
    import ctypes.util
    cands = []
    try:
        import nvidia.cuda_nvrtc
        for d in nvidia.cuda_nvrtc.__path__:
            cands += sorted(glob.glob(os.path.join(d, "lib", "libnvrtc.so*")))
    except ImportError:
        pass
    cands += sorted(glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))
    name = ctypes.util.find_library("nvrtc")
    if name:
        cands.append(name)
    for c in cands:
        if "builtins" in c or ".alt." in c:
            continue
        try:
            return ctypes.CDLL(c)
        except OSError:
            continue
    return None


_NVRTC = _find_nvrtc()


@pytest.mark.skipif(_NVRTC is None, reason="libnvrtc not found")
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("name", sorted(_cupy._FILE_KERNELS))
def test_nvrtc_name_expressions(name, arch):
    import ctypes
    lib = _NVRTC
    src = _cupy._source(name).encode()
    # one program with every dtype's name expressions (CuPy makes one per dtype; the
    # instantiations are the same)
    prog = ctypes.c_void_p()
    assert lib.nvrtcCreateProgram(ctypes.byref(prog), src, name.encode(), 0, None, None) == 0
    exprs = [f"{k}<{ctype}>".encode() for ctype in _cupy._CTYPES.values()
             for k in _cupy._FILE_KERNELS[name]]
    for e in exprs:
        assert lib.nvrtcAddNameExpression(prog, e) == 0
    opts = [b"-std=c++14", b"--gpu-architecture=" + arch.encode()]
    rc = lib.nvrtcCompileProgram(prog, len(opts), (ctypes.c_char_p * len(opts))(*opts))
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(prog, log)
    assert rc == 0, f"{name}: {log.value.decode()}"
    for e in exprs:
        lowered = ctypes.c_char_p()
        assert lib.nvrtcGetLoweredName(prog, e, ctypes.byref(lowered)) == 0
        assert lowered.value and lowered.value.startswith(b"_Z"), e
    lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
    assert size.value > 0
    lib.nvrtcDestroyProgram(ctypes.byref(prog))
