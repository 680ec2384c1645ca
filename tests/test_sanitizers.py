"""The fused float32 GEMM engine's C code under AddressSanitizer + UndefinedBehaviorSanitizer.

tests/c/cgemm_check.c includes fastconv/src/fc_cgemm.h (which includes fc_igemm.h), runs
both forms of the engine on random geometries with 1-4 OpenMP threads, and compares every
output element with a float64 direct sum: the oracle is that sum, not fastconv. Skipped
never: building fastconv needs the same C compiler, and GCC ships both sanitizers, so a
compiler that cannot build this program is a broken toolchain and the test fails.
"""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRC = os.path.join(ROOT, "tests", "c", "cgemm_check.c")
CC = os.environ.get("CC", "gcc")


@pytest.fixture(scope="module")
def binary(tmp_path_factory):
    assert shutil.which(CC) is not None, f"no C compiler ({CC}): fastconv cannot be built either"
    out = str(tmp_path_factory.mktemp("asan") / "cgemm_check")
    cmd = [CC, "-O1", "-g", "-fsanitize=address,undefined", "-fno-omit-frame-pointer",
           "-fno-sanitize-recover=undefined", "-fopenmp",
           "-I", os.path.join(ROOT, "fastconv", "src"), SRC, "-o", out, "-lm"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        pytest.fail(f"cgemm_check.c does not build with {CC} -fsanitize=address,undefined:\n"
                    f"{r.stderr}")
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fused_gemm_under_sanitizers(binary, seed):
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=1:abort_on_error=0",
               UBSAN_OPTIONS="print_stacktrace=1")
    r = subprocess.run([binary, "400", str(seed)], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-4000:]
    assert "bad 0" in r.stdout
