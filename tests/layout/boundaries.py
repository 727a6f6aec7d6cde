"""The package boundaries of ztone, as checks over the source's syntax trees.

Rules (docs/ARCHITECTURE.md):

1. ``ztone.node`` and what it uses (``ztone.crypto``, ``ztone.util.ctext``,
   ``ztone.util.jsontext``, ``ztone.errors``), the checksum ``ztone.util.inet_checksum`` and
   the user-space network stack ``ztone.netstack`` import no I/O, clock or randomness.
2. No import cycle among the modules of ``ztone.node`` (imports under
   ``TYPE_CHECKING`` count too: a cycle of types is still a cycle of knowledge).
3. No module touches another module's private names: no ``from m import _x``, no
   ``m._x`` on an imported module, and no ``obj._x`` unless ``_x`` is defined in the
   module doing the access (``self._x`` and a class's own privates stay allowed).
4. ``ztone.controller`` imports nothing from ``ztone.service``, ``ztone.osdep`` or
   ``ztone.cli``; ``ztone.node`` imports nothing outside node, crypto, util and errors.
5. Nothing imports ``ztone.cli``: the command-line tools are reached only through their
   console-script entry points (pyproject ``[project.scripts]``).

Run as a script to print every violation, one per line.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

IO_MODULES = frozenset({
    "asyncio", "socket", "select", "selectors", "threading", "time", "random", "secrets",
    "os", "subprocess", "multiprocessing", "concurrent", "signal", "pathlib", "shutil",
    "tempfile", "datetime", "uuid", "io", "sqlite3", "ztone.service", "ztone.osdep",
    "ztone.controller", "ztone.cli", "ztone.relay", "ztone.util.atomic",
})  # fmt: skip

# Packages the core may import from ztone (rule 4).
CORE_MAY_USE = ("ztone.node", "ztone.crypto", "ztone.util.ctext", "ztone.util.jsontext",
                "ztone.errors", "ztone._speedups", "ztone")  # fmt: skip


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name of the imported module (or "pkg.name")
    names: tuple[str, ...]  # imported names for "from m import a, b"; () for "import m"
    lineno: int


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def iter_modules(package: str, src: Path = SRC) -> Iterator[tuple[str, Path]]:
    base = src / package.replace(".", "/")
    if base.is_dir():
        paths = sorted(base.rglob("*.py"))
    else:
        paths = [base.with_suffix(".py")] if base.with_suffix(".py").is_file() else []
    for path in paths:
        yield module_name(path, src), path


def imports_of(path: Path, src: Path = SRC) -> list[Import]:
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path, src)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, (), node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.append(Import(module, tuple(a.name for a in node.names), node.lineno))
        elif isinstance(node, ast.Call) and (
            getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        ) in ("__import__", "import_module"):
            found.append(Import("<dynamic import>", (), node.lineno))
    return found


def _under(name: str, prefixes: tuple[str, ...] | frozenset[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _targets(imp: Import, known: set[str]) -> list[str]:
    """The ztone modules an import reaches: ``from pkg import mod`` names ``pkg.mod``."""
    out = [imp.module]
    out.extend(f"{imp.module}.{n}" for n in imp.names if f"{imp.module}.{n}" in known)
    return out


def core_io_violations(src: Path = SRC) -> list[str]:
    out = []
    for package in ("ztone.node", "ztone.crypto", "ztone.util.ctext", "ztone.util.jsontext",
                    "ztone.errors", "ztone.util.inet_checksum",
                    "ztone.netstack"):  # fmt: skip
        for name, path in iter_modules(package, src):
            for imp in imports_of(path, src):
                if (
                    imp.module == "<dynamic import>"
                    or _under(imp.module, IO_MODULES)
                    or any(_under(f"{imp.module}.{n}", IO_MODULES) for n in imp.names)
                ):
                    out.append(f"{name}:{imp.lineno}: core imports I/O: {imp.module}")
    return out


def node_cycles(src: Path = SRC) -> list[str]:
    modules = dict(iter_modules("ztone.node", src))
    known = set(modules)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set()
        for imp in imports_of(path, src):
            for target in _targets(imp, known):
                # A package's __init__ is a module too; importing a submodule
                # runs its package, but that edge is not knowledge: skip parents.
                if target in known and target != name:
                    deps.add(target)
        graph[name] = deps
    cycles: list[str] = []
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append("import cycle: " + " <-> ".join(sorted(component)))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def _defined_privates(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return {n for n in names if n.startswith("_") and not n.startswith("__")}


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_access_violations(src: Path = SRC) -> list[str]:
    out = []
    for name, path in iter_modules("ztone", src):
        tree = ast.parse(path.read_text(), filename=str(path))
        own = _defined_privates(tree)
        imported_modules: set[str] = set()
        for imp in imports_of(path, src):
            if not imp.module.startswith("ztone"):
                continue
            if imp.module == "ztone" and imp.names == ("_speedups",):
                continue  # the optional C extension is a module named with an underscore
            for n in imp.names:
                if _is_private(n):
                    out.append(f"{name}:{imp.lineno}: imports private {imp.module}.{n}")
                imported_modules.add(n)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or not _is_private(node.attr):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in ("self", "cls"):
                continue
            if node.attr in own:
                continue
            out.append(f"{name}:{node.lineno}: touches private .{node.attr}")
    return out


def layering_violations(src: Path = SRC) -> list[str]:
    out = []
    for name, path in iter_modules("ztone", src):
        for imp in imports_of(path, src):
            targets = [imp.module, *(f"{imp.module}.{n}" for n in imp.names)]
            if name.startswith("ztone.controller") and any(
                _under(t, ("ztone.service", "ztone.osdep", "ztone.cli")) for t in targets
            ):
                out.append(f"{name}:{imp.lineno}: controller imports {imp.module}")
            if (
                name.startswith("ztone.node")
                and imp.module.startswith("ztone")
                and not any(
                    _under(t, CORE_MAY_USE) and not _under(t, IO_MODULES) for t in [imp.module]
                )
            ):
                out.append(f"{name}:{imp.lineno}: core imports {imp.module}")
            if not name.startswith("ztone.cli") and any(_under(t, ("ztone.cli",)) for t in targets):
                out.append(f"{name}:{imp.lineno}: imports the CLI {imp.module}")
    return out


RULES: dict[str, Callable[[Path], list[str]]] = {
    "core I/O": core_io_violations,
    "node import cycles": node_cycles,
    "private names": private_access_violations,
    "layering": layering_violations,
}


def all_violations(src: Path = SRC) -> dict[str, list[str]]:
    return {rule: check(src) for rule, check in RULES.items()}


if __name__ == "__main__":
    total = 0
    prefix = sys.argv[1] if len(sys.argv) > 1 else ""
    for rule, everything in all_violations().items():
        found = [f for f in everything if f.startswith(prefix) or rule == "node import cycles"]
        total += len(found)
        print(f"== {rule}: {len(found)}")
        for line in found:
            print("  " + line)
    sys.exit(1 if total else 0)
