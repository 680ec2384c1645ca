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
