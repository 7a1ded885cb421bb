"""numba's BLAS probe is answered by scipy's cython_blas alone (workbench/numba_blas.py): the
same module scipy's own import gives, numba still sees a BLAS, and scipy.linalg imports as usual
afterwards. Each case runs in a fresh interpreter, where nothing has imported scipy.linalg yet."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _run(code: str) -> dict:
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_numba_finds_a_blas_without_scipy_linalg():
    out = _run("import json, sys\n"
               "import workbench\n"
               "import numba.np.arraymath as am\n"
               "print(json.dumps({'blas': am._HAVE_BLAS, 'linalg': 'scipy.linalg' in sys.modules,\n"
               "                  'capsules': len(sys.modules['scipy.linalg.cython_blas'].__pyx_capi__)}))\n")
    assert out == {"blas": True, "linalg": False, "capsules": out["capsules"]}
    assert out["capsules"] > 100            # the BLAS routines scipy exports (dgemm, ddot, ...)


def test_scipy_linalg_imports_as_usual_afterwards_and_shares_the_module():
    out = _run("import json, sys\n"
               "from workbench.numba_blas import load_cython_blas_alone\n"
               "first = load_cython_blas_alone()\n"
               "early = sys.modules['scipy.linalg.cython_blas']\n"
               "import numpy as np, scipy.linalg, scipy.linalg.cython_blas as by_name\n"
               "a = np.array([[4.0, 1.0], [1.0, 3.0]])\n"
               "print(json.dumps({'first': first, 'same': by_name is early,\n"
               "                  'again': load_cython_blas_alone(),\n"
               "                  'solve': scipy.linalg.solve(a, np.array([1.0, 2.0])).round(6).tolist()}))\n")
    assert out == {"first": True, "same": True, "again": True, "solve": [0.090909, 0.636364]}


def test_nothing_is_done_once_scipy_linalg_is_loaded():
    out = _run("import json, sys, scipy.linalg\n"
               "from workbench.numba_blas import load_cython_blas_alone\n"
               "print(json.dumps({'loaded': load_cython_blas_alone()}))\n")
    assert out == {"loaded": True}          # the package loaded its cython_blas itself


@pytest.mark.parametrize("layout", ["no-module", "no-scipy"])
def test_another_layout_leaves_numbas_own_import(layout):
    hide = ("import importlib.machinery as m\n"
            "m.EXTENSION_SUFFIXES[:] = ['.not-an-extension']\n" if layout == "no-module" else
            "sys.modules['scipy'] = None\n")
    out = _run("import json, sys\n" + hide +
               "from workbench.numba_blas import load_cython_blas_alone\n"
               "print(json.dumps({'loaded': load_cython_blas_alone(),\n"
               "                  'filed': 'scipy.linalg.cython_blas' in sys.modules}))\n")
    assert out == {"loaded": False, "filed": False}
