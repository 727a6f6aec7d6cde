"""Mutation testing of the protocol core, the controller and the local API (bounded sample).

    python3 -m pip install -e '.[test,mutation]'
    python3 bench/mutation.py --sample 150 --seconds 1200

Tool: mutmut 3 (configured in pyproject.toml, ``[tool.mutmut]``). It copies ``src/``
and ``tests/`` into ``./mutants``, compiles every mutant of ``src/ztone/node``,
``src/ztone/crypto`` (part of the core until the redesign), ``src/ztone/controller``
and ``src/ztone/service/api`` into the copy behind a
switch, records once which tests reach which function, then runs each mutant in a
forked child against only those tests. That per-function test selection is what
makes a sample affordable on a 2-core machine; the native ``_speedups`` module is
copied along unmutated.

Steps, all bounded by ``--seconds`` (the run is stopped there and the mutants not
reached are reported as "not run"):

1. generate the mutants (first run: about 3 minutes on 2 cores; later runs only
   redo files that changed);
2. draw ``--sample`` mutant names at random (``--seed``), each package in
   proportion to its number of mutants;
3. ``mutmut run <names>``: on the first run it first runs the selected test suite
   once with tracing (a few minutes), kept in ``mutants/`` for later runs;
4. print, per package, killed / survived / no tests / timeout and the score
   ``killed / (killed + survived + no tests)`` (a timeout counts as killed), then
   every survivor with its file:line and diff.

``--recheck`` (same ``--sample`` and ``--seed``) tests again only the mutants of the
sample that were not killed, after tests were added.

Survivors named in ``bench/mutation-equivalents.txt`` (one ``<mutant name>  <reason>``
a line) are equivalent mutants: listed with their reason and left out of the score.
Mutant names number the mutants of one function, so an edit to that function can
renumber them; the file says which source they were checked against.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MUTANTS = ROOT / "mutants"
EQUIVALENTS = ROOT / "bench" / "mutation-equivalents.txt"
PACKAGES = ("ztone.node", "ztone.crypto", "ztone.controller", "ztone.service.api")
KILLED = {1, 3, 36, 37, -24, 24, 152, 255}  # mutmut's exit codes for killed/timeout/type check
SURVIVED = 0
NO_TESTS = {5, 33}

GENERATE = """
import sys
from mutmut.__main__ import create_mutants, store_lines_covered_by_tests
from mutmut.mutation.trampoline import set_mutant_under_test
from mutmut.utils.file_utils import copy_also_copy_files, copy_src_dir, setup_source_paths
set_mutant_under_test("mutant_generation")
copy_src_dir()
copy_also_copy_files()
setup_source_paths()
store_lines_covered_by_tests()
stats = create_mutants(int(sys.argv[1]))
print(f"generated: {stats.mutated} files mutated, {stats.unmodified} unchanged")
"""


@dataclass
class Mutant:
    name: str
    meta: Path
    exit_code: int | None

    @property
    def package(self) -> str:
        return next((p for p in PACKAGES if self.name.startswith(p + ".")), "other")

    @property
    def source(self) -> Path:
        return ROOT / self.meta.relative_to(MUTANTS).with_suffix("")


def _run_bounded(argv: list[str], deadline: float) -> int | None:
    """Run a command in its own process group; stop that group at the deadline."""
    proc = subprocess.Popen(argv, cwd=ROOT, start_new_session=True)
    try:
        return proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        return None


def load_mutants() -> list[Mutant]:
    out: list[Mutant] = []
    for meta in sorted(MUTANTS.joinpath("src").rglob("*.py.meta")):
        data = json.loads(meta.read_text())
        for name, code in data.get("exit_code_by_key", {}).items():
            out.append(Mutant(name, meta, code))
    return [m for m in out if m.package != "other"]


def load_equivalents() -> dict[str, str]:
    out: dict[str, str] = {}
    if EQUIVALENTS.exists():
        for line in EQUIVALENTS.read_text().splitlines():
            if line.strip() and not line.startswith("#"):
                name, _, reason = line.strip().partition(" ")
                out[name] = reason.strip()
    return out


def draw(mutants: list[Mutant], sample: int, seed: int) -> list[Mutant]:
    """``sample`` mutants, each package's share in proportion to its size (at least 1)."""
    rng = random.Random(seed)
    by_package: dict[str, list[Mutant]] = {}
    for m in mutants:
        by_package.setdefault(m.package, []).append(m)
    chosen: list[Mutant] = []
    for _, items in sorted(by_package.items()):
        k = max(1, round(sample * len(items) / len(mutants)))
        chosen += rng.sample(items, min(k, len(items)))
    return chosen


def diff_of(mutant: Mutant) -> str:
    proc = subprocess.run(
        ["mutmut", "show", mutant.name],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return proc.stdout.strip() or proc.stderr.strip()


def line_of(mutant: Mutant, diff: str) -> int | None:
    """The source line the mutation changes: the first removed diff line, looked up
    inside the mutated function's lines in the original file."""
    minus = [ln for ln in diff.splitlines() if ln.startswith("-") and not ln.startswith("---")]
    removed = minus[0][1:].strip() if minus else None
    if removed is None:
        return None
    tail = mutant.name.rsplit(".", 1)[-1].split("__mutmut_")[0]
    function = tail.rsplit("ǁ", 1)[-1] if "ǁ" in tail else tail.removeprefix("x_")
    text = mutant.source.read_text()
    lines = text.splitlines()
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function:
            for n in range(node.lineno, (node.end_lineno or node.lineno) + 1):
                if lines[n - 1].strip() == removed:
                    return n
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sample", type=int, default=150, help="mutants to test (default 150)")
    parser.add_argument("--seconds", type=float, default=1200, help="time bound (default 1200)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the sample")
    parser.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    parser.add_argument(
        "--recheck",
        action="store_true",
        help="test again only the sample's mutants not already killed in an earlier run "
        "(after adding tests: same --sample and --seed)",
    )
    args = parser.parse_args()
    try:
        import mutmut  # noqa: F401, PLC0415 (only to say how to install it)
    except ImportError:
        print("mutmut is not installed: python3 -m pip install -e '.[mutation]'")
        return 2
    start = time.monotonic()
    deadline = start + args.seconds

    code = _run_bounded([sys.executable, "-c", GENERATE, str(args.max_children)], deadline)
    if code != 0:
        print("mutant generation " + ("ran out of time" if code is None else f"failed ({code})"))
        return 1
    mutants = load_mutants()
    sample = draw(mutants, args.sample, args.seed)
    totals = Counter(m.package for m in mutants)
    print(f"{len(mutants)} mutants ({', '.join(f'{p}: {n}' for p, n in sorted(totals.items()))});"
          f" testing {len(sample)} (seed {args.seed})", flush=True)  # fmt: skip
    to_run = [m for m in sample if not (args.recheck and m.exit_code in KILLED)]
    if args.recheck:
        print(f"rechecking {len(to_run)} not killed before", flush=True)
    code = 0
    if to_run:
        code = _run_bounded(
            ["mutmut", "run", "--max-children", str(args.max_children), *(m.name for m in to_run)],
            deadline,
        )
    elapsed = time.monotonic() - start
    if code is None:
        print(f"stopped at the time bound ({args.seconds:.0f} s)")

    results = {m.name: m.exit_code for m in load_mutants()}
    equivalents = load_equivalents()
    survivors: list[Mutant] = []
    print(f"\nmutation score, sample of {len(sample)}, {elapsed:.0f} s")
    print(f"{'package':20} {'sample':>6} {'killed':>6} {'surv.':>6} {'no test':>7} "
          f"{'equiv.':>6} {'not run':>7} {'score':>7}")  # fmt: skip
    for package in PACKAGES:
        mine = [m for m in sample if m.package == package]
        c: Counter[str] = Counter()
        for m in mine:
            code = results.get(m.name)
            if code is None or code not in KILLED | NO_TESTS | {SURVIVED}:
                c["not run"] += 1
            elif code in KILLED:
                c["killed"] += 1
            elif m.name in equivalents:
                c["equivalent"] += 1
            else:
                c["survived" if code == SURVIVED else "no tests"] += 1
                survivors.append(m)
        tested = c["killed"] + c["survived"] + c["no tests"]
        score = f"{100 * c['killed'] / tested:6.1f}%" if tested else "    n/a"
        print(f"{package:20} {len(mine):6} {c['killed']:6} {c['survived']:6} {c['no tests']:7} "
              f"{c['equivalent']:6} {c['not run']:7} {score}")  # fmt: skip

    listed = [m for m in sample if m.name in equivalents and results.get(m.name) == SURVIVED]
    if listed:
        print("\nequivalent (bench/mutation-equivalents.txt):")
        for m in listed:
            print(f"  {m.name}: {equivalents[m.name]}")
    if survivors:
        print("\nsurviving mutants:")
    for m in survivors:
        diff = diff_of(m)
        line = line_of(m, diff)
        where = f"{m.source.relative_to(ROOT)}:{line if line is not None else '?'}"
        status = "survived" if results.get(m.name) == SURVIVED else "no test reaches it"
        print(f"\n--- {where}  {m.name}  ({status})")
        print("\n".join(ln for ln in diff.splitlines() if not ln.startswith(("---", "+++"))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
