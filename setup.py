"""Build script for fastconv: Cython extensions with OpenMP and -O3.

Environment switches (for developers and packagers):

FASTCONV_NO_OPENMP=1   build without OpenMP (kernels then run single-threaded;
                       ``fastconv.show_config()`` reports it).
FASTCONV_ONLY=a,b      build only the named extension modules (``_core``, ...);
                       handy while several people work on different kernels.

No host-specific ISA flags: the kernels are portable x86-64 (and any other ISA)
code; the AVX2/FMA paths are selected at run time (gcc ``target`` attributes and
``__builtin_cpu_supports`` in fastconv/src/), so a wheel built here runs on an
older CPU.
"""
import glob
import os
import shutil
import sys
import tempfile

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def _compiler_has_openmp(compiler):
    """Try to compile and link a tiny OpenMP program with ``compiler``."""
    if os.environ.get("FASTCONV_NO_OPENMP", "") not in ("", "0"):
        return False
    tmp = tempfile.mkdtemp()
    src = os.path.join(tmp, "omp_check.c")
    with open(src, "w") as f:
        f.write("#include <omp.h>\nint main(void){return omp_get_max_threads() < 1;}\n")
    try:
        objs = compiler.compile([src], output_dir=tmp, extra_postargs=["-fopenmp"])
        compiler.link_executable(objs, "omp_check", output_dir=tmp,
                                 extra_postargs=["-fopenmp"])
        return True
    except Exception:  # noqa: BLE001 - any failure means "no OpenMP"
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """Adds -O3 and, when the compiler supports it, OpenMP (loudly)."""

    def build_extensions(self):
        ctype = self.compiler.compiler_type
        openmp = ctype == "unix" and _compiler_has_openmp(self.compiler)
        if openmp:
            print("fastconv: building WITH OpenMP", file=sys.stderr)
        else:
            print("fastconv: WARNING building WITHOUT OpenMP: kernels will run "
                  "single-threaded", file=sys.stderr)
        for ext in self.extensions:
            if ctype == "unix":
                ext.extra_compile_args += ["-O3", "-fno-strict-aliasing",
                                           "-Wno-unused-function",
                                           "-Wno-maybe-uninitialized"]
            elif ctype == "msvc":
                ext.extra_compile_args += ["/O2"]
            if openmp:
                ext.extra_compile_args.append("-fopenmp")
                ext.extra_link_args.append("-fopenmp")
                ext.define_macros.append(("FASTCONV_OPENMP", "1"))
        super().build_extensions()


def _extensions():
    only = [s.strip() for s in os.environ.get("FASTCONV_ONLY", "").split(",") if s.strip()]
    exts = []
    for pyx in sorted(glob.glob(os.path.join("fastconv", "*.pyx"))):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if only and name not in only:
            continue
        exts.append(Extension(
            "fastconv." + name, [pyx],
            include_dirs=[np.get_include(), os.path.join("fastconv", "src")],
            define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            depends=glob.glob(os.path.join("fastconv", "src", "*.h"))
            + glob.glob(os.path.join("fastconv", "*.pxi"))
            + glob.glob(os.path.join("fastconv", "*.pxd")),
        ))
    return exts


setup(
    ext_modules=cythonize(
        _extensions(),
        compiler_directives={
            "language_level": 3,
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
        },
    ),
    cmdclass={"build_ext": BuildExt},
)
