"""Layers point down (STYLE.md rule 1): a test fails on any upward import."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "workbench"

# rank of each layer; a module may import only its own rank or lower ones
RANK = {"errors": 0, "binary": 0, "config": 0, "capture": 1, "wire": 2, "metrics": 2, "engine": 3,
        "synth": 3, "model": 4, "store": 5, "api": 6, "host": 6, "sinks": 6, "runner": 7, "frame_report": 7, "dissect": 7, "cli": 8, "cli_db": 8, "cli_model": 8}
# wire/ is numpy + numba (and the standard library); base58 (the package) only names the
# preregistered keys at start-up
WIRE_ALLOWED = {"numpy", "numba", "base58"} | set(sys.stdlib_module_names)


def _layer(mod: Path) -> str:
    rel = mod.relative_to(PKG)
    return rel.parts[0].removesuffix(".py") if rel.parts[0] != "__init__.py" else "errors"


def _imports(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:                                    # relative: resolve against the package
                base = path.relative_to(PKG).parts[:-1][: max(0, len(path.relative_to(PKG).parts) - node.level)]
                target = list(base) + (node.module.split(".") if node.module else [])
                yield "workbench." + ".".join(target) if target else "workbench"
            elif node.module:
                yield node.module
        elif isinstance(node, ast.Import):
            for a in node.names:
                yield a.name


def test_no_upward_imports():
    bad = []
    for path in PKG.rglob("*.py"):
        me = _layer(path)
        for mod in _imports(path):
            if not mod.startswith("workbench"):
                if me == "wire" and mod.split(".")[0] not in WIRE_ALLOWED:
                    bad.append(f"{path.relative_to(PKG)} imports {mod} (wire/ is numpy + numba only)")
                continue
            parts = mod.split(".")
            if len(parts) < 2:
                continue
            target = parts[1]
            if target in RANK and me in RANK and RANK[target] > RANK[me]:
                bad.append(f"{path.relative_to(PKG)} ({me}) imports {mod} ({target})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_every_module_has_a_rank():
    missing = sorted({_layer(p) for p in PKG.rglob("*.py")} - set(RANK))
    assert not missing, f"give these a layer rank in RANK: {missing}"
