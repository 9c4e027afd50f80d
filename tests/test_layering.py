"""The import-layering contract: which package may import which, no cycles, and the evaluator without the parser.

Every import of every module counts, including those inside functions (a lazy
import is still a dependency). ALLOWED is the table docs/architecture.md shows:
a package may import only the packages its row names; `engine` holds the values
every layer shares (money, periods, lines, refusals) and `settings` is read only by
the entry points (billing, admin_app). templates/ is data: nothing imports it.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from conftest import ROOT

ALLOWED: dict[str, set[str]] = {
    "engine": set(),
    "rules": {"engine"},
    "dsl": {"engine", "rules"},
    "metering": {"engine", "storage"},
    "invoicing": {"engine"},
    "settings": set(),
    "telemetry": set(),
    "storage": {"engine"},
    "audit": {"engine", "storage"},
    "ledger": {"engine", "rules", "dsl", "metering", "invoicing", "storage", "audit"},
    "ingest": {"engine", "metering", "storage", "ledger", "telemetry"},
    "identity": {"engine", "storage", "audit", "ledger", "telemetry"},
    "review": {"engine", "rules", "dsl", "metering", "invoicing", "storage", "audit", "ledger", "telemetry"},
    "lifecycle": {"engine", "invoicing", "storage", "audit", "ledger", "review", "telemetry"},
    "admin_app": {"engine", "rules", "dsl", "metering", "invoicing", "settings", "telemetry", "storage", "audit",
                  "ledger", "ingest", "identity", "review", "lifecycle"},
    "billing": {"engine", "rules", "dsl", "metering", "invoicing", "settings", "telemetry", "storage", "audit",
                "ledger", "ingest", "identity", "review", "lifecycle", "admin_app"},
}
PACKAGES = tuple(ALLOWED)
DATA = ("templates",)


def imports_of(path: Path) -> list[tuple[str, int]]:
    """(top-level name, line) of every absolute import in the module, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name.split(".")[0], node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.module.split(".")[0], node.lineno))
    return found


def project_imports(root: Path = ROOT) -> dict[str, list[tuple[str, str]]]:
    """package → [(imported package, "file:line")] for every import of another package of the project."""
    edges = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            for name, line in imports_of(path):
                if name != package and (name in PACKAGES or name in DATA):
                    edges[package].append((name, f"{path.relative_to(root)}:{line}"))
    return edges


def violations(edges: dict[str, list[tuple[str, str]]]) -> list[str]:
    return [f"{where}: {package} imports {name}" for package, imported in edges.items()
            for name, where in imported if name not in ALLOWED[package]]


def cycles(edges: dict[str, list[tuple[str, str]]]) -> list[list[str]]:
    graph = {package: sorted({name for name, _ in edges.get(package, ())} & set(PACKAGES)) for package in PACKAGES}
    found, state = [], {}

    def visit(package: str, path: list[str]) -> None:
        state[package] = "open"
        for name in graph[package]:
            if state.get(name) == "open":
                found.append(path[path.index(name):] + [name])
            elif name not in state:
                visit(name, path + [name])
        state[package] = "done"

    for package in PACKAGES:
        if package not in state:
            visit(package, [package])
    return found


def test_every_package_is_in_the_table_and_the_table_has_no_cycle():
    on_disk = {path.parent.name for path in ROOT.glob("*/__init__.py")}
    assert on_disk == set(PACKAGES)
    assert cycles({package: [(name, "table") for name in allowed] for package, allowed in ALLOWED.items()}) == []


def test_the_architecture_document_shows_this_table():
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    layering = text[text.index("## Layering"):]
    rows = dict(re.findall(r"^\| `(\w+)` \| ([^|]*?) \|$", layering, re.MULTILINE))
    assert {package: set() if allowed == "—" else set(allowed.split(", ")) for package, allowed in rows.items()} \
        == ALLOWED


def test_each_package_imports_only_what_its_row_allows():
    assert violations(project_imports()) == []


def test_no_cycle_between_packages():
    assert cycles(project_imports()) == []


def test_a_forbidden_import_is_caught_even_inside_a_function(tmp_path):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text('"""x"""\n')
    (tmp_path / "storage" / "db.py").write_text("def url():\n    from settings.environment import load\n")
    (tmp_path / "engine" / "evaluate.py").write_text("import lifecycle.transitions\n")
    (tmp_path / "lifecycle" / "gate.py").write_text("from engine import evaluate\n")
    edges = project_imports(tmp_path)
    assert violations(edges) == ["engine/evaluate.py:1: engine imports lifecycle",
                                 "storage/db.py:2: storage imports settings"]
    assert cycles(edges) == [["engine", "lifecycle", "engine"]]


def test_the_evaluator_runs_without_the_parser():
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, engine.evaluate; "
                               "print(sorted(m for m in sys.modules if m.split('.')[0] in ('dsl', 'lark')))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]"


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_says_what_it_holds_and_what_it_must_not_know(package):
    """The docstring names every module of the package (a rule primitive's module is named by the registry
    instead: adding one touches no docstring), and what the package knows nothing of."""
    from rules.registry import MODULES

    primitives = {Path(module.__file__).name for module in MODULES} if package == "rules" else set()
    docstring = ast.get_docstring(ast.parse((ROOT / package / "__init__.py").read_text(encoding="utf-8"))) or ""
    unnamed = [path.name for path in sorted((ROOT / package).glob("*.py"))
               if path.name not in {"__init__.py", "__main__.py", *primitives}
               and not re.search(rf"(?<![\w/]){re.escape(path.name)}", docstring)]
    assert unnamed == [], f"{package}/__init__.py does not name {unnamed}"
    assert "nothing of" in docstring or "must not" in docstring.lower(), package
