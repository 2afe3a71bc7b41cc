"""The import order docs/ARCHITECTURE.md gives is the code's: no module imports one from a layer above its own."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Lowest first; each may import only its own layer and those before it (imports inside functions included).
LAYERS = ["project", "errors", "model", "results", "analysis", "judge", "present", "lab", "pipeline", "sweeps",
          "capacity", "advisor", "course", "commands", "cli"]


def _layer(module: str) -> str:
    part = module.split(".")[1] if "." in module else module
    return "cli" if part == "__main__" else part  # the entry point and the command line are one layer


def test_no_module_imports_from_a_layer_above_its_own():
    back = []
    for path in sorted((ROOT / "harness").rglob("*.py")):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if module == "harness.__init__":
            continue  # the package's lazy exports, read by notebooks and scripts
        own = LAYERS.index(_layer(module))
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            for name in names:
                if name.startswith("harness.") and LAYERS.index(_layer(name)) > own:
                    back.append(f"{module} imports {name}")
    assert not back, back


def test_the_architecture_doc_lists_the_layers_in_this_order():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    assert " ← ".join(LAYERS) in text
