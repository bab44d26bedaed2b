"""The layers of docs/architecture.md, checked on the imports: a module may import only from its own layer's
packages or from layers below. Reads every module's ``import`` / ``from`` statements (also those inside
functions) with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fakeclr"

# Bottom to top; each entry is a top-level module or package of fakeclr. Keep in step with docs/architecture.md.
LAYERS = [
    {"errors", "config", "dist", "files", "images", "phase", "provenance", "safeload"},  # foundation
    {"nn", "augment", "data"},                                   # networks, augmentation, data sets
    {"contrastive"},                                             # the contrastive methods' parts
    {"network_file"},                                            # network files (nn + contrastive heads)
    {"metrics"},                                                 # evaluation
    {"train"},                                                   # the training loop
    {"tools"},                                                   # user tools (generate, study, import, export...)
    {"cli", "__main__"},                                         # the command line
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}


def _unit(module: str) -> str:
    """``fakeclr.metrics.fid`` -> ``metrics``; ``fakeclr`` itself (the package __init__) -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute fakeclr module names imported by ``path``, with line numbers."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                names = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
            else:
                names = [node.module or ""]
            out += [(n, node.lineno) for n in names if n.startswith("fakeclr") and not n.split(".")[-1].startswith("__")]
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("fakeclr")]
    return out


def test_every_module_belongs_to_a_layer():
    units = {p.stem if p.is_file() else p.name for p in SRC.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p.is_dir() and (p / "__init__.py").exists())}
    assert units == set(LAYER_OF), (units - set(LAYER_OF), set(LAYER_OF) - units)


def test_imports_go_down_the_layers_only():
    bad = []
    for path in sorted(SRC.rglob("*.py")):
        me = _unit(".".join(path.relative_to(SRC.parent).with_suffix("").parts))
        if me == "__init__":
            continue
        for module, line in _imports(path):
            other = _unit(module)
            if other == "__init__" or other == me:
                continue
            if LAYER_OF[other] > LAYER_OF[me]:                     # peers of one layer may import each other
                bad.append(f"{path.relative_to(SRC)}:{line} ({me}, layer {LAYER_OF[me]}) imports {module} "
                           f"({other}, layer {LAYER_OF[other]})")
    assert not bad, "\n".join(bad)


def test_the_check_sees_a_violation(tmp_path):
    """The checker itself: a foundation module importing the training loop (also inside a function) is seen."""
    global SRC
    fake = tmp_path / "fakeclr"
    fake.mkdir()
    (fake / "images.py").write_text("from .train.loop import train\n\ndef f():\n    from fakeclr.tools import study\n")
    old, SRC = SRC, fake
    try:
        found = [m for m, _ in _imports(fake / "images.py")]
    finally:
        SRC = old
    assert found == ["fakeclr.train.loop", "fakeclr.tools"]
    assert all(LAYER_OF[_unit(m)] > LAYER_OF["images"] for m in found)
