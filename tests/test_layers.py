"""Layers point down (STYLE.md rule 1) and no module imports itself round a circle.

import_graph.py reads every form of import (relative, absolute, importlib, ``-m``/``-c`` child
processes, lazy ones in functions); this file ranks the layers and applies the rules to
workbench/, panel_apps/ and benchmarks/. The reader checks itself first (the ``test_reader_*``
tests feed it small fake trees), so a change that blinds it fails here rather than letting the
real tree pass unread.
"""

from __future__ import annotations

import functools
import sys
import textwrap
from pathlib import Path

from import_graph import REPO, Module, import_cycles, layer_of, read_tree, where

# rank of each layer (the first name under workbench/, or a script folder); a module may import
# only its own rank or lower ones
RANK = {
    "workbench": 0,                                     # the package's own __init__ (version, cache name)
    "errors": 0, "binary": 0, "config": 0,
    "linktypes": 0,                                     # link types and frame headers: sources write, wire reads
    "wide": 0,                                          # u128/u256 arithmetic: the engine's AMM maths, the chain's tick maths
    "arrow_columns": 0,                                 # numpy <-> Arrow without pyarrow's pandas hooks
    "numba_blas": 0,                                    # numba's BLAS probe without the whole of scipy.linalg
    "capture": 1,
    "host": 1,                                          # OS plumbing: cpu pinning, memory, NIC tuning
    "wire": 2, "metrics": 2,
    "chain": 2.5,                                       # RPC/Geyser sources: above wire, beside the engine
    "engine": 3,
    "synth": 4,                                         # writes captures with the engine's AMM maths as truth
    "model": 5,
    "store": 6,
    "sinks": 7, "row_files": 7,
    "dissect": 8, "frame_report": 8,                    # the Python faces
    "runner": 8,
    "api": 9,
    "cli": 10,
    "panel_apps": 11, "benchmarks": 11,                 # scripts: nothing in workbench imports them
}
# pairs the ranks alone would allow but the design forbids: the engine takes arrays and plain
# numbers (the runner turns settings into them), and where its inputs come from (capture, chain,
# synth) is not its business
NEVER = {("engine", "config"): "the engine takes arrays and plain numbers; the runner reads the settings",
         ("engine", "chain"): "chain/ feeds the runner; the engine never reaches for a source"}
# wire/ is numpy + numba (and the standard library); base58 (the package) only names the
# preregistered keys at start-up
WIRE_ALLOWED = {"numpy", "numba", "base58"} | set(sys.stdlib_module_names)

# (top-level name, folder, is a package); script folders import their siblings by bare name
ROOTS = (("workbench", REPO / "workbench", True),
         ("panel_apps", REPO / "panel_apps", False),
         ("benchmarks", REPO / "benchmarks", False))


# --- the rules ---------------------------------------------------------------------------------

def scanned_tops(mods) -> set[str]:
    return {n.split(".")[0] for n in mods}


def upward_imports(mods, rank=RANK, never=NEVER) -> list[str]:
    tops = scanned_tops(mods)
    bad = []
    for m in mods.values():
        me = layer_of(m.name)
        for e in m.edges:
            if e.target.split(".")[0] not in tops:
                if me == "wire" and e.target.split(".")[0] not in WIRE_ALLOWED:
                    bad.append(f"{where(m, e.line)} imports {e.target} (wire/ is numpy + numba only) [{e.how}]")
                continue
            to = layer_of(e.target)
            if me in rank and to in rank and rank[to] > rank[me]:
                bad.append(f"{where(m, e.line)} ({me}, {rank[me]}) imports {e.target} ({to}, {rank[to]}) "
                           f"[{e.kind}: {e.how}]")
            elif (me, to) in never:
                bad.append(f"{where(m, e.line)} ({me}) imports {e.target} ({to}): {never[(me, to)]} "
                           f"[{e.kind}: {e.how}]")
    return bad


def unranked(mods, rank=RANK) -> list[str]:
    return sorted({layer_of(n) for n in mods} - set(rank))



# --- the real tree -----------------------------------------------------------------------------

@functools.cache
def _tree() -> dict[str, Module]:
    return read_tree(ROOTS)


def test_every_layer_has_a_rank():
    missing = unranked(_tree())
    assert not missing, f"give these a layer rank in RANK: {missing}"


def test_the_reader_resolves_every_import():
    blind = [b for m in _tree().values() for b in m.blind]
    assert not blind, "imports the layer test cannot resolve (so cannot check):\n" + "\n".join(blind)


def test_no_upward_imports():
    bad = upward_imports(_tree())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_import_circles():
    circles = import_cycles(_tree())
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_the_scan_sees_all_three_trees():
    tops = scanned_tops(_tree())
    assert tops == {"workbench", "panel_apps", "benchmarks"}, tops
    assert len(_tree()) > 50


# --- the reader checks itself ------------------------------------------------------------------

def _fake(tmp_path: Path, files: dict[str, str], scripts: dict[str, str] | None = None):
    """A fake workbench/ (and optionally panel_apps/) under tmp_path, read like the real one."""
    for rel, src in files.items():
        p = tmp_path / "workbench" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(src))
    for rel, src in (scripts or {}).items():
        p = tmp_path / "panel_apps" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(textwrap.dedent(src))
    return read_tree((("workbench", tmp_path / "workbench", True),
                      ("panel_apps", tmp_path / "panel_apps", False)))


BASE = {"__init__.py": "", "config.py": "", "runner/__init__.py": "", "runner/results.py": "",
        "engine/__init__.py": "", "engine/market/__init__.py": "", "engine/market/pool.py": "",
        "synth/__init__.py": ""}


def _engine_file(tmp_path, src: str, name: str = "engine/x.py"):
    mods = _fake(tmp_path, {**BASE, name: src})
    return mods, upward_imports(mods)


def test_reader_sees_relative_import_of_a_package_above(tmp_path):
    mods, bad = _engine_file(tmp_path, "from .. import runner\n")
    assert [e.target for e in mods["workbench.engine.x"].edges] == ["workbench.runner"]
    assert len(bad) == 1 and "imports workbench.runner (runner, 8)" in bad[0]


def test_reader_sees_every_spelling_of_one_upward_import(tmp_path):
    spellings = [
        "from workbench import runner",
        "import workbench.runner.results",
        "from workbench.runner.results import X",
        "from ..runner import results",
        "from ..runner.results import X",
        "def f():\n    from workbench.runner import X",                        # lazy
        "import importlib\nimportlib.import_module('workbench.runner')",
        "from importlib import import_module\nimport_module('workbench.runner.results')",
        "import importlib\nimportlib.import_module('..runner', __package__)",
        "import importlib\nimportlib.import_module('.results', 'workbench.runner')",
        "NAME = 'workbench.runner'\nimport importlib\nimportlib.import_module(NAME)",
        "__import__('workbench.runner')",
        "import runpy\nrunpy.run_module('workbench.runner')",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-m', 'workbench.runner'])",
        "import subprocess, sys\nsubprocess.run((sys.executable, '-mworkbench.runner'))",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'from workbench.runner import X'])",
        "import subprocess, sys\nSRC = '''\nimport sys\nsys.path.insert(0, {repo!r})\n"
        "from workbench import runner\n'''\nsubprocess.run([sys.executable, '-c', SRC.format(repo='.')])",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', f'import workbench.runner; print({1})'])",
        "if True:\n    try:\n        import workbench.runner as r\n    except ImportError:\n        r = None",
        "import importlib\nimportlib.import_module(name='workbench.runner')",
        "exec('import workbench.runner')",
        "class C:\n    def f(self):\n        return lambda: __import__('workbench.runner.results')",
    ]
    for i, src in enumerate(spellings):
        d = tmp_path / str(i)
        mods, bad = _engine_file(d, src + "\n")
        blind = [b for m in mods.values() for b in m.blind]
        assert not blind, (src, blind)
        assert len(bad) >= 1 and all("workbench.runner" in b for b in bad), (src, bad)


def test_reader_flags_what_it_cannot_resolve(tmp_path):
    for i, src in enumerate([
        "import importlib\nimportlib.import_module('workbench.' + input())",
        "import importlib\ndef f(name):\n    return importlib.import_module(name)",
        "import subprocess, sys\ndef f(code):\n    subprocess.run([sys.executable, '-c', code])",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-c', 'import ('])",
        "def f(src):\n    exec(src)",
        "import subprocess, sys\nsubprocess.run([sys.executable, '-m', MODULE])",
    ]):
        mods, _ = _engine_file(tmp_path / str(i), src + "\n")
        assert mods["workbench.engine.x"].blind, src


def test_reader_ranks_and_forbidden_pairs(tmp_path):
    _, bad = _engine_file(tmp_path / "a", "from workbench.synth import x\n")
    assert bad and "(synth, 4)" in bad[0]                 # engine and synth no longer share a rank
    _, bad = _engine_file(tmp_path / "b", "from workbench.config import Settings\n")
    assert bad and "runner reads the settings" in bad[0]
    _, bad = _engine_file(tmp_path / "c", "from workbench.engine.market import pool\nimport numpy\n")
    assert not bad
    mods = _fake(tmp_path / "d", {**BASE, "newthing/__init__.py": ""})
    assert unranked(mods) == ["newthing"]


def test_reader_type_checking_imports_count_for_ranks_not_circles(tmp_path):
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from workbench.runner import X\n"
    mods, bad = _engine_file(tmp_path, src)
    assert [e.kind for e in mods["workbench.engine.x"].edges if e.target.startswith("workbench")] == ["type"]
    assert len(bad) == 1


def test_reader_names_a_two_module_circle(tmp_path):
    mods = _fake(tmp_path, {**BASE, "engine/a.py": "from .b import f\n",
                            "engine/b.py": "def f():\n    from workbench.engine.a import g\n"})
    circles = import_cycles(mods)
    assert len(circles) == 1
    assert "workbench.engine.a -> workbench.engine.b" in circles[0]
    assert "workbench.engine.b -> workbench.engine.a" in circles[0] and "engine/b.py:2" in circles[0]


def test_reader_names_a_three_module_circle_through_importlib(tmp_path):
    mods = _fake(tmp_path, {**BASE, "engine/a.py": "import workbench.engine.b\n",
                            "engine/b.py": "from . import c\n",
                            "engine/c.py": "import importlib\nimportlib.import_module('.a', __package__)\n"})
    circles = import_cycles(mods)
    assert len(circles) == 1 and all(f"workbench.engine.{n}" in circles[0] for n in "abc")


def test_reader_submodule_import_is_no_edge_to_the_package(tmp_path):
    # the package re-exports from its modules, which import each other: no circle
    files = {**BASE, "runner/__init__.py": "from .results import X\nfrom .live import live\n",
             "runner/results.py": "X = 1\n", "runner/live.py": "from .results import X\nfrom . import results\n"}
    mods = _fake(tmp_path / "a", files)
    assert not import_cycles(mods)
    assert {e.target for e in mods["workbench.runner.live"].edges} == {"workbench.runner.results"}
    # a name taken from the package's __init__ is an edge to it, and that is a circle
    mods = _fake(tmp_path / "b", {**files, "runner/live.py": "from . import X\n"})
    assert len(import_cycles(mods)) == 1


def test_reader_child_processes_count_for_ranks_not_circles(tmp_path):
    mods = _fake(tmp_path, {**BASE, "engine/a.py": "import sys\nCMD = [sys.executable, '-m', 'workbench.engine.b']\n",
                            "engine/b.py": "import workbench.engine.a\n"})
    assert not import_cycles(mods)
    assert [e.kind for e in mods["workbench.engine.a"].edges if e.target.startswith("workbench")] == ["run"]


def test_reader_scans_script_folders(tmp_path):
    mods = _fake(tmp_path, {**BASE, "engine/x.py": "import panel_apps._common\n"},
                 scripts={"_common.py": "from workbench.runner import X\n",
                          "live.py": "import _common as C\nfrom _common import y\n"})
    assert {e.target for e in mods["panel_apps.live"].edges} == {"panel_apps._common"}
    bad = upward_imports(mods)
    assert len(bad) == 1 and "panel_apps" in bad[0] and "engine/x.py" in bad[0]


def test_reader_keeps_wire_to_numpy_and_numba(tmp_path):
    mods = _fake(tmp_path, {**BASE, "wire/__init__.py": "", "wire/txn.py": "import numpy\nimport numba\n"
                            "def f():\n    import pandas\n"})
    bad = upward_imports(mods)
    assert len(bad) == 1 and "pandas" in bad[0]


def test_no_module_shadows_the_standard_library():
    """A module named like a standard one (workbench/inspect.py was) is one `import inspect`
    away from the wrong module in a script run from inside the package."""
    pkg = REPO / "workbench"
    names = {p.stem for p in pkg.rglob("*.py") if p.stem not in ("__init__", "__main__")}
    names |= {p.name for p in pkg.rglob("*") if p.is_dir() and (p / "__init__.py").exists()}
    clash = sorted(names & set(sys.stdlib_module_names))
    assert not clash, f"modules named like the standard library's: {clash}"
