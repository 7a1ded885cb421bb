"""numba's BLAS probe without the whole of scipy.linalg.

When numba first loads a cached kernel it imports its NumPy lowering (``numba.np.arraymath``),
which checks that a BLAS exists by importing ``scipy.linalg.cython_blas``. Python imports a
package before its submodule, so that probe runs scipy.linalg's ``__init__``, which imports all
of scipy.linalg (its decompositions, their Fortran wrappers, scipy's array-API layer): most of
a warm replay's numba start-up, for a module that only exports BLAS function pointers. The
engine calls no BLAS routine.

``load_cython_blas_alone`` loads that one extension module from scipy's own folder and files it
under its full name in ``sys.modules``, where the import system looks first: numba's probe then
finds it and the package's ``__init__`` is not run. The module object is the one the import
would have made (same file, same loader), so numba's BLAS calls, if a kernel ever made one,
bind to the same routines; a later ``import scipy.linalg`` imports the package as usual. One
difference remains: the package is not given ``cython_blas`` as an attribute (the import system
binds a submodule to its package only when it loads both), so code outside Cython's ``cimport``
names it in full, ``import scipy.linalg.cython_blas``, as numba does. Where
the module cannot be found so (no scipy, another layout), nothing is done and numba's own
import runs as before.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

CYTHON_BLAS = "scipy.linalg.cython_blas"


def load_cython_blas_alone() -> bool:
    """File scipy's ``cython_blas`` in ``sys.modules`` without importing scipy.linalg; True if it is
    there now (loaded here or before)."""
    if CYTHON_BLAS in sys.modules:
        return True
    if "scipy.linalg" in sys.modules:       # the package is loaded anyway: nothing to save
        return False
    try:
        import scipy
        finder = importlib.machinery.FileFinder(
            os.path.join(scipy.__path__[0], "linalg"),
            (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES))
        spec = finder.find_spec(CYTHON_BLAS)
        if spec is None:
            return False
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except (ImportError, OSError, IndexError):       # (IndexError: a namespace package with no path)
        return False
    sys.modules[CYTHON_BLAS] = module
    return True
