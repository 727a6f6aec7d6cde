"""The package rules of docs/ARCHITECTURE.md hold for the whole source tree.

Each rule is checked on the real tree (no violation allowed) and on a small
synthetic tree built to break it, so a checker that sees nothing fails here.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from layout import boundaries as B


@pytest.mark.parametrize("rule", sorted(B.RULES))
def test_source_tree_keeps_the_rule(rule: str) -> None:
    found = B.RULES[rule](B.SRC)
    assert not found, f"{rule}: {len(found)} violations\n" + "\n".join(found)


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "ztone" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in path.parents:
            if parent == root:
                break
            (parent / "__init__.py").touch()
        path.write_text(text)
    return root


def test_checker_sees_io_in_the_core(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "node/a.py": "import os\n",
        "crypto/b.py": "from time import monotonic\n",
        "util/ctext.py": "from ztone.util.atomic import atomic_write_file\n",
        "node/c.py": "import importlib\nimportlib.import_module('socket')\n",
    })  # fmt: skip
    found = B.core_io_violations(src)
    assert [f.split(":")[0] for f in found] == [
        "ztone.node.a", "ztone.node.c", "ztone.crypto.b", "ztone.util.ctext",
    ]  # fmt: skip


def test_checker_sees_import_cycles_even_for_types(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "node/a.py": "from ztone.node import b\n",
        "node/b.py": (
            "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n"
            "    from ztone.node.c import C\n"
        ),
        "node/c.py": "from ztone.node.a import x\n",
        "node/d.py": "from ztone.node import a\n",
    })  # fmt: skip
    assert B.node_cycles(src) == [
        "import cycle: ztone.node.a <-> ztone.node.b <-> ztone.node.c"
    ]


def test_checker_sees_private_names_of_other_modules(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "node/a.py": (
            "from ztone.node.b import _helper\n"
            "from ztone.node import b\n"
            "class A:\n"
            "    def __init__(self) -> None:\n"
            "        self._mine = 1\n"
            "    def same(self, other: 'A') -> int:\n"
            "        return other._mine + self._mine\n"
            "def f(node: object) -> object:\n"
            "    return node._send, b._table, node.__class__\n"
        ),
    })  # fmt: skip
    assert B.private_access_violations(src) == [
        "ztone.node.a:1: imports private ztone.node.b._helper",
        "ztone.node.a:9: touches private ._send",
        "ztone.node.a:9: touches private ._table",
    ]


def test_checker_sees_layering_breaks(tmp_path: Path) -> None:
    src = _tree(tmp_path, {
        "controller/api.py": "from ztone.service.api.http import Request\n",
        "node/x.py": "from ztone.controller import core\n",
        "service/y.py": "from ztone.cli import cli\n",
        "cli/z.py": "from ztone.service import y\n",
    })  # fmt: skip
    assert B.layering_violations(src) == [
        "ztone.controller.api:1: controller imports ztone.service.api.http",
        "ztone.node.x:1: core imports ztone.controller",
        "ztone.service.y:1: imports the CLI ztone.cli",
    ]
