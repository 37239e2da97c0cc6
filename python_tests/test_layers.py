"""The package's layers, kept honest: every import (module level or inside a function) of one unit of
diffpose_fast (a top-level module or subpackage) from another points down the list below, never up or sideways,
so there is no import circle between units. docs/design.md "Layers" is this list in words."""
import ast
from pathlib import Path

import diffpose_fast

# bottom first; a unit may import only units of lower layers
LAYERS = [
    {"_native", "config", "persistence", "data", "diffusion"},
    {"ops"},
    {"models", "distribution", "metrics", "uncertainty", "export", "viz", "trajectory"},
    {"inference"},
    {"training"},
    {"video", "baselines", "evaluation"},
    {"streaming"},
    {"lifter"},
    {"protocols"},
    {"demo", "_build_info"},
    {"cli"},
    {"__init__"},
]
ROOT_CONSTANTS = {"__version__"}     # names defined in the package's __init__ without importing anything


def _unit_imports():
    root = Path(diffpose_fast.__file__).parent
    units = {p.stem if p.is_file() else p.name for p in root.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    found = []
    for path in root.rglob("*.py"):
        rel = path.relative_to(root)
        src = rel.parts[0].removesuffix(".py")
        package = list(rel.parent.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[:len(package) - (node.level - 1)]
                dotted = base + (node.module.split(".") if node.module else [])
                targets = [dotted[0]] if dotted else [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("diffpose_fast"):
                dotted = node.module.split(".")[1:]
                targets = [dotted[0]] if dotted else [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1] for a in node.names if a.name.startswith("diffpose_fast.")]
            for t in targets:
                if t in ROOT_CONSTANTS or t == src:
                    continue
                found.append((f"{rel}:{node.lineno}", src, t if t in units else "__init__"))
    return units, found


def test_every_unit_has_a_layer():
    units, _ = _unit_imports()
    placed = set().union(*LAYERS)
    assert units <= placed, f"units without a layer in LAYERS: {sorted(units - placed)}"


def test_imports_point_down():
    _, found = _unit_imports()
    layer = {u: i for i, group in enumerate(LAYERS) for u in group}
    bad = [f"{where}: {src} (layer {layer[src]}) imports {dst} (layer {layer[dst]})"
           for where, src, dst in found if layer[dst] >= layer[src]]
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)
