"""The package's layers: every part imports only the parts below it (DESIGN.md's data flow).

library → render → metrics → models → detect → register → index → search → evaluate → web → demo → cli, with the
neutral helpers (errors, workspace, imageio, viz, framing) below everything. A lower part that reaches up (the
index fitting the search's score temperature, the demo borrowing the CLI's table) makes a cycle that hides where a
convention lives.
"""

from __future__ import annotations

import ast
from pathlib import Path

import cadsearch

ROOT = Path(cadsearch.__file__).parent
NEUTRAL = ("__init__", "errors", "workspace", "imageio", "viz", "framing")
ORDER = (
    "library",
    "render",
    "metrics",
    "models",
    "detect",
    "register",
    "index",
    "search",
    "evaluate",
    "web",
    "demo",
    "cli",
)
LEVEL = {name: 0 for name in NEUTRAL} | {name: i + 1 for i, name in enumerate(ORDER)}


def _part(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    """The cadsearch parts a source file imports (at any depth: function-level imports count too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cadsearch"):
            if node.module == "cadsearch":
                found |= {a.name for a in node.names if a.name != "__version__"}
            else:
                found.add(_part(node.module))
        elif isinstance(node, ast.Import):
            found |= {_part(a.name) for a in node.names if a.name.startswith("cadsearch.")}
    return found


def test_every_part_imports_only_parts_below_it() -> None:
    wrong = []
    for path in sorted(ROOT.rglob("*.py")):
        module = "cadsearch." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        here = _part(module)
        assert here in LEVEL, f"{module}: part {here!r} has no place in the layer order; add it to this test"
        for other in _imports(path) - {here}:
            assert other in LEVEL, f"{module} imports unknown part {other!r}"
            if LEVEL[other] >= LEVEL[here] and not (LEVEL[here] == 0 and other in NEUTRAL and other != "__init__"):
                wrong.append(f"{module} imports cadsearch.{other}")
    # the neutral helpers may use each other (framing uses errors) but nothing above them
    assert not wrong, "imports that reach up a layer:\n" + "\n".join(wrong)


def test_the_checker_sees_an_upward_import(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from cadsearch.search.scoring import fit_temperature\n")
    assert _imports(bad) == {"search"} and LEVEL["search"] > LEVEL["index"]
