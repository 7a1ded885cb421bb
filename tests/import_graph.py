"""The import graph of the repository's Python, as the layer test reads it (tests/test_layers.py).

Every form of import is read, wherever it sits (a function-level import counts like a top-level
one): ``import workbench.x.y``, ``from workbench.x import y`` (an edge to the module y when
workbench/x/y.py or y/ exists, else to workbench.x), relative imports at any level,
``importlib.import_module`` / ``__import__`` / ``runpy.run_module`` with literal names (or names
bound to literals), and the commands of child processes: a ``-m module`` argument, and the source
of a ``-c`` argument, which is parsed and read like the file's own code. An import of a submodule
is an edge to that submodule, not to its package's ``__init__``. An import whose target the reader
cannot work out (a computed module name, a ``-c`` source built at run time) is recorded as blind,
and the layer test fails on it: what the reader cannot see, it does not let pass.

Each edge has a kind: import (top level), lazy (in a function), importlib, type (under
``if TYPE_CHECKING:``), run (a child process). The circle search leaves out type (never run) and
run (another interpreter, so no circle at import time); the ranks count them all.
"""

from __future__ import annotations

import ast
import string
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CYCLE_KINDS = {"import", "lazy", "importlib"}

@dataclass
class Edge:
    target: str            # dotted name, resolved to a scanned module where one exists
    line: int
    kind: str              # import | lazy | importlib | type | run
    how: str               # the source form, for the message


@dataclass
class Module:
    name: str
    path: Path
    is_pkg: bool           # an __init__.py
    script: bool           # in a script folder (panel_apps/, benchmarks/)
    edges: list[Edge] = field(default_factory=list)
    blind: list[str] = field(default_factory=list)     # imports the reader could not resolve


# --- reading the tree -------------------------------------------------------------------------

def find_modules(roots) -> dict[str, Module]:
    """Every .py under each (top-level name, folder, is a package) root, by dotted name."""
    mods = {}
    for top, folder, is_package in roots:
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = (top,) + path.relative_to(folder).with_suffix("").parts
            is_init = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_init else parts)
            mods[name] = Module(name, path, is_init, not is_package)
    return mods


def layer_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if parts[0] == "workbench" and len(parts) > 1 else parts[0]


def _resolve(name: str, mods) -> str:
    """The longest prefix of ``name`` that is a scanned module (the name itself if none is)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in mods:
            return cand
    return name


def _from_target(base: str, names: list[str], mods) -> list[str]:
    """``from base import a, b``: the submodule base.a where it exists, else base itself."""
    out = []
    for a in names:
        sub = f"{base}.{a}"
        out.append(sub if sub in mods else _resolve(base, mods))
    return out


def _relative_base(mod: Module, level: int, module: str | None) -> str | None:
    if mod.script:
        return None                                     # a script folder is not a package
    pkg = mod.name.split(".") if mod.is_pkg else mod.name.split(".")[:-1]
    if level - 1 > len(pkg) - 1:
        return None                                     # beyond the top-level package
    base = pkg[: len(pkg) - (level - 1)]
    return ".".join(base + (module.split(".") if module else []))


def _script_sibling(mod: Module, name: str, mods) -> str:
    """In a script folder, ``import _common`` is the sibling file (the folder is on sys.path)."""
    if mod.script:
        folder = mod.name.split(".")[0]
        if f"{folder}.{name.split('.')[0]}" in mods:
            return _resolve(f"{folder}.{name}", mods)
    return _resolve(name, mods)


class _Strings:
    """Works out the value of a string expression: literals, f-strings and ``.format`` templates
    (replacement fields become ``None``, which keeps Python source parseable), ``+``, and names
    bound to such values anywhere in the file. None when it cannot."""

    def __init__(self, tree: ast.AST):
        self.bound: dict[str, list[ast.expr]] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name):
                        self.bound.setdefault(t.id, []).append(node.value)
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value:
                self.bound.setdefault(node.target.id, []).append(node.value)

    def values(self, node, template: bool = False, depth: int = 0) -> list[str] | None:
        """Every value ``node`` may hold. ``template``: replacement fields may stand as ``None``
        (for a ``-c`` source, never for a module name)."""
        if depth > 8:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return [node.value]
        if isinstance(node, ast.JoinedStr):
            if not template and not all(isinstance(v, ast.Constant) for v in node.values):
                return None
            return ["".join(str(v.value) if isinstance(v, ast.Constant) else "None" for v in node.values)]
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            a, b = self.values(node.left, template, depth + 1), self.values(node.right, template, depth + 1)
            return [x + y for x in a for y in b] if a is not None and b is not None else None
        if template and isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
                and node.func.attr == "format":
            base = self.values(node.func.value, template, depth + 1)
            if base is None:
                return None
            out = []
            for tmpl in base:
                s = ""
                for literal, fieldname, _spec, _conv in string.Formatter().parse(tmpl):
                    s += literal + ("None" if fieldname is not None else "")
                out.append(s)
            return out
        if isinstance(node, ast.Name) and node.id in self.bound:
            out = []
            for v in self.bound[node.id]:
                got = self.values(v, template, depth + 1)
                if got is None:
                    return None
                out += got
            return out
        return None


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
           (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _call_name(func: ast.expr) -> str:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


class _Reader(ast.NodeVisitor):
    def __init__(self, mod: Module, mods, strings: _Strings, run: bool = False, at_line: int | None = None):
        self.mod, self.mods, self.strings = mod, mods, strings
        self.run = run                                  # reading a child's -c source
        self.at_line = at_line                          # reading a source string: the line that holds it
        self.lazy = 0
        self.typing = 0

    def _kind(self, importlib: bool = False) -> str:
        if self.run:
            return "run"
        if self.typing:
            return "type"
        if importlib:
            return "importlib"
        return "lazy" if self.lazy else "import"

    def _line(self, node) -> int:
        return self.at_line if self.at_line is not None else node.lineno

    def _add(self, target: str, node, how: str, importlib: bool = False):
        if self.at_line is not None:
            how = f"{'-c' if self.run else 'exec'} source: {how}"
        self.mod.edges.append(Edge(target, self._line(node), self._kind(importlib), how))

    def _blind(self, node, what: str):
        self.mod.blind.append(f"{where(self.mod, self._line(node))}: {what}")

    # scopes
    def visit_FunctionDef(self, node):
        self.lazy += 1
        self.generic_visit(node)
        self.lazy -= 1

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_Lambda = visit_FunctionDef

    def visit_If(self, node):
        if _is_type_checking(node.test):
            self.typing += 1
            for n in node.body:
                self.visit(n)
            self.typing -= 1
            for n in node.orelse:
                self.visit(n)
        else:
            self.generic_visit(node)

    # statements
    def visit_Import(self, node):
        for a in node.names:
            self._add(_script_sibling(self.mod, a.name, self.mods), node, f"import {a.name}")

    def visit_ImportFrom(self, node):
        names = [a.name for a in node.names if a.name != "*"] or ["*"]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        how = f"from {'.' * node.level}{node.module or ''} import {shown}"
        if node.level:
            base = _relative_base(self.mod, node.level, node.module)
            if base is None:
                self._blind(node, f"{how}: a relative import outside a package")
                return
        else:
            if node.module == "__future__":
                return
            base = _script_sibling(self.mod, node.module, self.mods)
        for t in _from_target(base, names, self.mods):
            self._add(t, node, how)

    # calls: importlib, __import__, runpy, exec, child-process commands
    def visit_Call(self, node):
        name = _call_name(node.func)
        if name in ("import_module", "__import__", "run_module"):
            self._dynamic(node, name)
        elif isinstance(node.func, ast.Name) and name == "exec" and node.args:
            vals = self.strings.values(node.args[0], template=True)
            if vals is None:
                self._blind(node, "exec(...) of a source the reader cannot work out")
            for v in vals or []:
                self._source(node, v, blind=True, run=self.run)
        self.generic_visit(node)

    def _dynamic(self, node, name: str):
        first = node.args[0] if node.args else \
            next((k.value for k in node.keywords if k.arg in ("name", "mod_name")), None)
        vals = self.strings.values(first) if first is not None else None
        if vals is None:
            self._blind(node, f"{name}(...) with a module name the reader cannot work out")
            return
        for v in vals:
            how = f"{name}({v!r})"
            if name == "import_module" and v.startswith("."):
                pkg = None
                arg = node.args[1] if len(node.args) > 1 else \
                    next((k.value for k in node.keywords if k.arg == "package"), None)
                if arg is not None:
                    if isinstance(arg, ast.Name) and arg.id in ("__package__", "__name__") and not self.mod.script:
                        pkg = self.mod.name if (self.mod.is_pkg or arg.id == "__name__") else \
                            self.mod.name.rpartition(".")[0]
                    else:
                        got = self.strings.values(arg)
                        pkg = got[0] if got and len(got) == 1 else None
                if pkg is None:
                    self._blind(node, f"{how}: a relative name without a package the reader can read")
                    continue
                level = len(v) - len(v.lstrip("."))
                parts = pkg.split(".")
                if level - 1 >= len(parts):
                    self._blind(node, f"{how}: beyond the top-level package")
                    continue
                v = ".".join(parts[: len(parts) - (level - 1)] + ([v.lstrip(".")] if v.lstrip(".") else []))
            self._add(_resolve(v, self.mods), node, how, importlib=True)
            if name == "__import__":
                fl = next((k.value for k in node.keywords if k.arg == "fromlist"), None)
                if fl is None and len(node.args) > 3:
                    fl = node.args[3]
                if isinstance(fl, (ast.List, ast.Tuple)):
                    items = [e.value for e in fl.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
                    for t in _from_target(_resolve(v, self.mods), items, self.mods):
                        self._add(t, node, how, importlib=True)

    def _is_interpreter(self, e, seen: frozenset = frozenset()) -> bool:
        if isinstance(e, ast.Attribute) and e.attr == "executable":
            return True                                 # sys.executable
        if isinstance(e, ast.Constant) and isinstance(e.value, str):
            return Path(e.value).name.startswith("python")
        if isinstance(e, ast.Name) and e.id not in seen:        # (names bound to each other: ``i = k``, ``k = i``)
            return any(self._is_interpreter(v, seen | {e.id}) for v in self.strings.bound.get(e.id, []))
        return False

    def _command(self, node):
        """A ``-m``/``-c`` argument in a list or tuple. Where the list also holds the interpreter
        (``sys.executable``, ``python3``) it is a command for sure, and an argument the reader
        cannot work out fails; elsewhere (a table of option names, say) only what reads as a
        module name or as Python counts."""
        elts = node.elts
        command = any(self._is_interpreter(e) for e in elts)
        for i, e in enumerate(elts):
            if not (isinstance(e, ast.Constant) and isinstance(e.value, str)):
                continue
            flag, glued = e.value[:2], e.value[2:]
            if flag not in ("-m", "-c") or (glued and flag == "-c"):
                continue
            if glued:
                vals = [glued]
            elif i + 1 < len(elts):
                vals = self.strings.values(elts[i + 1], template=(flag == "-c"))
            else:
                vals = None
            if vals is None:
                if command:
                    self._blind(e, f"a child process's {flag} argument the reader cannot work out "
                                   "(name it literally, or run a real module with -m)")
                continue
            for v in vals:
                if flag == "-m":
                    if all(p.isidentifier() for p in v.split(".")):
                        self.mod.edges.append(Edge(_resolve(v, self.mods), self._line(e), "run", f"-m {v}"))
                    elif command:
                        self._blind(e, f"-m {v!r} is no module name")
                else:
                    self._source(e, v, blind=command, run=True)

    def _source(self, node, src: str, blind: bool, run: bool):
        """Read a source string (a child's ``-c``, or ``exec``) as if it were this file's code."""
        try:
            tree = ast.parse(textwrap.dedent(src))
        except SyntaxError as err:
            if blind:
                self._blind(node, f"a source string the reader cannot parse ({err.msg}): run a real module with -m")
            return
        reader = _Reader(self.mod, self.mods, _Strings(tree), run=run, at_line=self._line(node))
        reader.lazy, reader.typing = self.lazy, self.typing
        reader.visit(tree)

    def visit_List(self, node):
        self._command(node)
        self.generic_visit(node)

    visit_Tuple = visit_List


def read_module(mod: Module, mods) -> None:
    try:
        tree = ast.parse(mod.path.read_text(), filename=str(mod.path))
    except SyntaxError as err:
        mod.blind.append(f"{where(mod, err.lineno or 0)}: cannot parse ({err.msg})")
        return
    _Reader(mod, mods, _Strings(tree)).visit(tree)


def read_tree(roots) -> dict[str, Module]:
    mods = find_modules(roots)
    for m in mods.values():
        read_module(m, mods)
    return mods



def where(mod: Module, line: int) -> str:
    p = mod.path
    return f"{p.relative_to(REPO) if p.is_relative_to(REPO) else p}:{line}"



def import_cycles(mods) -> list[str]:
    """Each circle of modules (Tarjan's strongly connected components), with the shortest
    circle through each member and the file:line of every step."""
    graph: dict[str, dict[str, tuple[int, str]]] = {n: {} for n in mods}
    for m in mods.values():
        for e in m.edges:
            if e.kind in CYCLE_KINDS and e.target in mods and e.target != m.name:
                graph[m.name].setdefault(e.target, (e.line, e.how))

    index, low, on, stack, comps = {}, {}, set(), [], []

    def strong(v):
        # iterative Tarjan: (node, iterator over its successors)
        work = [(v, iter(sorted(graph[v])))]
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        while work:
            node, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on:
                    low[node] = min(low[node], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on.discard(w)
                        comp.append(w)
                        if w == node:
                            break
                    if len(comp) > 1:
                        comps.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)

    def shortest_circle(start, members):
        prev, frontier = {start: None}, [start]
        while frontier:
            nxt = []
            for u in frontier:
                for w in sorted(graph[u]):
                    if w not in members:
                        continue
                    if w == start:
                        path = [u]
                        while prev[path[-1]] is not None:
                            path.append(prev[path[-1]])
                        return list(reversed(path)) + [start]
                    if w not in prev:
                        prev[w] = u
                        nxt.append(w)
            frontier = nxt
        return None

    out = []
    for comp in comps:
        members, seen, lines = set(comp), set(), []
        for start in comp:
            circle = shortest_circle(start, members)
            key = frozenset(circle)
            if circle is None or key in seen:
                continue
            seen.add(key)
            steps = [f"{a} -> {b} ({where(mods[a], graph[a][b][0])}: {graph[a][b][1]})"
                     for a, b in zip(circle, circle[1:])]
            lines.append("    " + "\n    ".join(steps))
        out.append(f"circle among {', '.join(comp)}:\n" + "\n  and\n".join(lines))
    return out
