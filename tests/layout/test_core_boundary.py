"""The protocol core imports no I/O, clock or randomness (DESIGN.md, the core contract)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from locations import ROOT

NODE = ROOT / "src" / "ztone" / "node"
FORBIDDEN = {
    "asyncio", "socket", "select", "selectors", "threading", "time", "random", "secrets",
    "os", "subprocess", "multiprocessing", "concurrent", "signal", "pathlib", "shutil",
    "tempfile", "datetime", "uuid", "ztone.service", "ztone.osdep",
}  # fmt: skip


def _imports(path: Path, root: Path = NODE) -> list[str]:
    """Absolute names of every module imported by ``path`` (relative ones resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ["ztone", "node", *path.relative_to(root).parts[:-1]]
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            names.append(module)
            names.extend(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "__import__":
            names.append("<dynamic __import__>")
    return names


def _forbidden(name: str) -> bool:
    return name == "<dynamic __import__>" or any(
        name == f or name.startswith(f + ".") for f in FORBIDDEN
    )


MODULES = sorted(NODE.rglob("*.py"))


def test_core_modules_exist() -> None:
    assert len(MODULES) >= 10


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(NODE)))
def test_core_module_imports_no_io(path: Path) -> None:
    bad = [n for n in _imports(path) if _forbidden(n)]
    assert not bad, f"{path.name} imports {bad}"


def test_checker_catches_forbidden_imports(tmp_path: Path) -> None:
    """The checker itself must see every import form (a test that cannot fail is no test)."""
    root = tmp_path / "node"
    root.mkdir()
    probe = root / "probe.py"
    probe.write_text("import os\nfrom time import monotonic\nfrom ..service import x\n")
    names = _imports(probe, root)
    assert [n for n in names if _forbidden(n)] == [
        "os", "time", "time.monotonic", "ztone.service", "ztone.service.x",
    ]  # fmt: skip
