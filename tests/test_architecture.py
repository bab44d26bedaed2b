"""The layers of docs/architecture.md, checked on the imports: a module may import only from its own layer's
packages or from layers below, and the modules of one package import each other without cycles. Reads every
module's ``import`` / ``from`` statements (also those inside functions) with ``ast``; nothing is imported."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "fakeclr"

# Bottom to top; each entry is a top-level module or package of fakeclr. Keep in step with docs/architecture.md.
LAYERS = [
    {"errors", "registry", "config", "dist", "files", "images", "phase", "provenance", "safeload"},  # foundation
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


def _module_file(module: str) -> Path | None:
    """The source file of the fakeclr module ``module`` (a package: its ``__init__.py``); None if it is no module."""
    base = SRC.parent.joinpath(*module.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _imports(path: Path) -> list[tuple[str, int]]:
    """Absolute fakeclr module names imported by ``path``, with line numbers. ``from P import x`` names ``P.x``
    when that is a module (relative or absolute), else ``P``."""
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = dict.fromkeys(f"{mod}.{a.name}" if _module_file(f"{mod}.{a.name}") else mod for a in node.names)
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


def _module_name(path: Path) -> str:
    """``src/fakeclr/data/stream.py`` -> ``fakeclr.data.stream``; a package's ``__init__.py`` -> the package."""
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_cycles() -> list[str]:
    """Import cycles among the modules of one package (the ``.py`` files of one folder of src/fakeclr, its
    ``__init__.py`` included), one line per cycle naming each import of it with its line number."""
    files = {_module_name(p): p for p in sorted(SRC.rglob("*.py"))}
    edges: dict[str, dict[str, int]] = {m: {} for m in files}          # importer -> {imported: first line}
    for me, path in files.items():
        for module, line in _imports(path):
            while module and module not in files:                      # an attribute of a module: that module
                module = module.rpartition(".")[0]
            if module and module != me and files[module].parent == path.parent:
                edges[me].setdefault(module, line)
    reach = {}
    for start in files:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        reach[start] = seen
    cycles = []
    for m in files:
        group = sorted(o for o in reach[m] if m in reach[o])          # m's strongly connected component
        if m in group and m == group[0]:
            cycles.append("; ".join(f"{files[a].relative_to(SRC)}:{line} imports {b}"
                                    for a in group for b, line in edges[a].items() if b in group))
    return cycles


def test_no_import_cycles_inside_a_package():
    cycles = _package_cycles()
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_the_cycle_check_sees_a_cycle(tmp_path):
    """The checker itself: a cycle closed by a function-level absolute import is seen, with both imports named;
    the same imports between modules of different packages are no package cycle."""
    global SRC
    fake = tmp_path / "fakeclr"
    (fake / "pkg").mkdir(parents=True)
    (fake / "other").mkdir()
    for init in (fake, fake / "pkg", fake / "other"):
        (init / "__init__.py").write_text("")
    (fake / "pkg" / "a.py").write_text("from .b import x\n")
    (fake / "pkg" / "b.py").write_text("x = 1\n\ndef f():\n    from fakeclr.pkg import a\n")
    (fake / "pkg" / "c.py").write_text("from ..other import d\n")
    (fake / "other" / "d.py").write_text("from fakeclr.pkg.c import y\n")
    old, SRC = SRC, fake
    try:
        found = _package_cycles()
    finally:
        SRC = old
    assert found == ["pkg/a.py:1 imports fakeclr.pkg.b; pkg/b.py:4 imports fakeclr.pkg.a"]
