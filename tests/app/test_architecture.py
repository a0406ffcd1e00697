"""The layering of ``app/``: imports only run downward, and only the app factory imports ``web``.

ground (``config``, ``urls``, ``dicom``, ``http``) < ``smart`` | ``fhir`` | ``display``
(side by side, never importing each other) < ``launches`` < ``web`` < the factory.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "app"
RANK = {"config": 0, "urls": 0, "dicom": 0, "http": 0, "outbound": 0,
        "smart": 1, "fhir": 1, "display": 1, "audit": 1, "observability": 1, "dicomweb": 1, "launches": 2, "web": 3, "__init__": 4,
        "__main__": 4, "cli": 4}


def _component(module: str) -> str:
    """``app.fhir.client`` -> ``fhir``; ``app`` -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """Absolute names of the ``app`` modules imported by the file at ``path``."""
    package = list(path.relative_to(APP.parent).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            if name == "app" or name.startswith("app."):
                found.add(name)
                found.update(f"app.{alias.name}" for alias in node.names if name == "app" and alias.name in RANK)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name == "app" or a.name.startswith("app."))
    return found


MODULES = sorted(APP.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(APP)))
def test_imports_run_downward(path):
    module = ".".join(path.relative_to(APP.parent).with_suffix("").parts)
    own = _component(module)
    for imported in _imports(path):
        other = _component(imported)
        if other == own or imported == "app":
            continue
        assert other in RANK, f"{module} imports {imported}: unknown component {other!r} (add it to RANK)"
        assert RANK[other] < RANK[own] or (RANK[other] == RANK[own] == 0), \
            f"{module} ({own}) imports {imported} ({other}): imports must run downward"


def test_only_the_factory_imports_web():
    importers = {".".join(p.relative_to(APP.parent).with_suffix("").parts) for p in MODULES
                 if _component(".".join(p.relative_to(APP.parent).with_suffix("").parts)) != "web"
                 and any(_component(i) == "web" for i in _imports(p))}
    assert importers == {"app.__init__"}
