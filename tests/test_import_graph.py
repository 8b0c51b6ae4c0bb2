"""The package's module-level import graph has no cycles, and parsing manifests imports no
recipe (DESIGN.md, "Architecture": the rules).

Only imports that run when a module is imported count: top-level statements, class bodies
and top-level if/try/with blocks. An import inside a function is a lazy seam (it runs on
use, after every module is initialized). An `if TYPE_CHECKING:` block never runs, so the
module graph leaves it out. A second check adds type-only imports back, between layers
(the package's top-level modules and subpackages): a cycle through one is still two layers
that know each other, as manifest -> recipes -> recipes.base -> (types) sources -> manifest
was. Inside one layer a helper may name the type of the class it serves (api.catalog_sync
takes a Registry).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "dataset_registry"
ROOT = "dataset_registry"

KNOWN: set[tuple[str, ...]] = set()
"""Cycles tolerated until their fix lands, each as `cycles()` gives it (rotated to start at
its smallest module); empty it as they go. output <-> stores.base (h-marker's) is not here:
stores.base imports output inside `verify`, a function, which these rules count as a lazy
seam, so neither graph has that edge."""


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = [package.name, *path.relative_to(package).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _run_at_import(body: list[ast.stmt], typing: bool) -> list[ast.Import | ast.ImportFrom]:
    """The import statements that run when the module body runs (not in functions); with
    `typing`, those in `if TYPE_CHECKING:` blocks too."""
    found: list[ast.Import | ast.ImportFrom] = []
    for stmt in body:
        if isinstance(stmt, ast.Import | ast.ImportFrom):
            found.append(stmt)
        elif isinstance(stmt, ast.If):
            if typing or not _is_type_checking(stmt.test):
                found += _run_at_import(stmt.body, typing)
            found += _run_at_import(stmt.orelse, typing)
        elif isinstance(stmt, ast.Try):
            for block in (stmt.body, *(h.body for h in stmt.handlers), stmt.orelse,
                          stmt.finalbody):
                found += _run_at_import(block, typing)
        elif isinstance(stmt, ast.With | ast.ClassDef):
            found += _run_at_import(stmt.body, typing)
    return found


def graph(package: Path = PACKAGE, *, typing: bool = False) -> dict[str, set[str]]:
    """module -> the package's modules it imports when imported."""
    mods = modules(package)
    edges: dict[str, set[str]] = {name: set() for name in mods}
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: list[str] = []
        for stmt in _run_at_import(ast.parse(path.read_text(encoding="utf-8")).body, typing):
            if isinstance(stmt, ast.Import):
                targets += [a.name for a in stmt.names]
                continue
            base = stmt.module or ""
            if stmt.level:
                anchor = package.split(".")[:len(package.split(".")) - stmt.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            targets.append(base)
            targets += [f"{base}.{a.name}" for a in stmt.names]  # `from . import plugins`
        for target in targets:
            # importing a.b.c runs a and a.b first, except a package the importer is inside
            # (it is initialized by then: `from .. import plugins` needs only plugins)
            while target:
                if target in mods and not (name == target or name.startswith(target + ".")):
                    edges[name].add(target)
                target = target.rpartition(".")[0]
    return edges


def layers(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph between layers: each module counted as its top-level module or subpackage
    (dataset_registry.api.runs -> dataset_registry.api)."""
    def layer(module: str) -> str:
        return ".".join(module.split(".")[:2])

    out: dict[str, set[str]] = {layer(m): set() for m in edges}
    for module, targets in edges.items():
        out[layer(module)] |= {layer(t) for t in targets} - {layer(module)}
    return out


def cycles(edges: dict[str, set[str]]) -> set[tuple[str, ...]]:
    """Every elementary cycle through each strongly connected component's modules, as a
    tuple rotated to start at its smallest name (enough to name each one to fix)."""
    found: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, trail: list[str]) -> None:
        for nxt in sorted(edges[node]):
            if nxt == start:
                i = trail.index(min(trail))
                found.add(tuple(trail[i:] + trail[:i]))
            elif nxt > start and nxt not in trail:  # each cycle once, from its smallest
                walk(start, nxt, [*trail, nxt])

    for start in sorted(edges):
        walk(start, start, [start])
    return found


def test_the_graph_sees_top_level_imports_only():
    edges = graph()
    # resolver imports the manifest at the top; the manifest's recipe lookups are lazy
    assert "dataset_registry.manifest" in edges["dataset_registry.engine.build"]
    assert not any(m.startswith("dataset_registry.recipes")
                   for m in edges["dataset_registry.manifest.loader"])
    # a relative `from .. import x` inside a subpackage resolves to the sibling module
    assert "dataset_registry.plugins" in edges["dataset_registry.recipes"]
    # importing a submodule runs its package's __init__ first
    assert "dataset_registry.stores" in edges["dataset_registry.testing.recipes"]  # .stores.base
    # a type-only import is an edge of the typing graph only
    assert "dataset_registry.sources.index" not in edges["dataset_registry.recipes.base"]
    assert "dataset_registry.sources.index" in graph(typing=True)["dataset_registry.recipes.base"]
    # the package's own lazy __init__ imports only the table of moved modules
    assert edges[ROOT] == {"dataset_registry._moved"}


def test_a_cycle_is_found_and_named(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {"__init__.py": "", "a.py": "from .sub import b\n",
             "sub/__init__.py": "", "sub/b.py": "from ..c import x\n",
             "c.py": "import os\nfrom typing import TYPE_CHECKING\n"
                     "if TYPE_CHECKING:\n    from . import a\n"
                     "def f():\n    from . import a\n",
             "d.py": "try:\n    from . import e\nexcept ImportError:\n    pass\n",
             "e.py": "class E:\n    from .d import x\n"}
    for name, text in files.items():
        (pkg / name).write_text(text)
    assert cycles(graph(pkg)) == {("pkg.d", "pkg.e")}
    # with types: a -> sub.b -> c -> (types) a; the lazy import in c.f is no edge
    assert cycles(graph(pkg, typing=True)) == {("pkg.a", "pkg.sub.b", "pkg.c"),
                                               ("pkg.d", "pkg.e")}
    assert "pkg.sub" in graph(pkg)["pkg.a"]  # the package of the submodule a imports
    assert cycles(layers(graph(pkg, typing=True))) == {("pkg.a", "pkg.sub", "pkg.c"),
                                                       ("pkg.d", "pkg.e")}


def _named(found: set[tuple[str, ...]]) -> str:
    return "\n".join(" -> ".join((*c, c[0])) for c in sorted(found))


def test_the_package_modules_have_no_import_cycles():
    new = cycles(graph()) - KNOWN
    assert not new, "import cycles:\n" + _named(new)


def test_the_layers_have_no_cycles_even_through_type_only_imports():
    new = cycles(layers(graph(typing=True))) - KNOWN
    assert not new, "layers that import each other (types included):\n" + _named(new)


# DESIGN.md's layer order, lowest first: a layer imports (types included) only layers of
# earlier tiers. The top-level modules (errors, config, plugins, ...) are layers too.
TIERS = [
    {"errors", "_moved", "config", "formats"},
    {"yamlio", "plugins", "core", "init"},
    {"manifest", "artifact"},  # the manifest imports no recipe; an artifact no store
    {"sources", "stores", "catalog"},  # stores know no recipe; the catalog never builds
    {"recipes"},  # recipes know nothing of stores or DuckDB
    {"executors"},
    {"engine"},  # keys, build, substituters, maintenance
    {"jobs", "reports"},  # reports: views of built datasets (card, diff, audit)
    {"api"},  # Registry wires the engine
    {"cli", "testing"},
    {"domains", "examples"},  # plugins of the core, through its public doors
    {""},  # the package itself: its lazy public names
]


def _tier(layer: str) -> int:
    name = layer[len(ROOT) + 1:]
    found = [i for i, tier in enumerate(TIERS) if name in tier]
    assert found, f"{layer} is in no tier of TIERS: place it"
    return found[0]


def test_each_layer_imports_only_the_layers_below_it():
    wrong = sorted(f"{a} -> {b}" for a, targets in layers(graph(typing=True)).items()
                   for b in targets if _tier(b) >= _tier(a))
    assert not wrong, "imports against the layer order (TIERS):\n" + "\n".join(wrong)


def test_the_layer_rule_finds_an_import_against_the_order():
    edges = {f"{ROOT}.recipes.select": {f"{ROOT}.stores.base"},  # allowed: a lower tier
             f"{ROOT}.stores.base": {f"{ROOT}.recipes"}}  # a store knowing a recipe
    lay = layers(edges | {f"{ROOT}.recipes": set()})
    wrong = [(a, b) for a, targets in lay.items() for b in targets if _tier(b) >= _tier(a)]
    assert wrong == [(f"{ROOT}.stores", f"{ROOT}.recipes")]


def test_the_top_level_holds_a_handful_of_modules():
    """DESIGN.md: `ls src/dataset_registry` reads like the diagram; the rest lives in
    packages (the engine, sources, artifact, core, jobs)."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "_moved", "config", "errors", "init", "plugins", "yamlio"]


def test_parsing_the_shipped_manifests_imports_no_recipe_and_no_numpy():
    from .conftest import MANIFESTS

    code = ("import sys, json\n"
            "from dataset_registry.manifest import load_manifests\n"
            f"m = load_manifests({str(MANIFESTS)!r})\n"
            "assert m.datasets() and m.jobs\n"
            "print(json.dumps(sorted(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out)
    recipes = [m for m in loaded if m.startswith("dataset_registry.recipes")]
    assert not recipes, f"parsing manifests imported recipes: {recipes}"
    heavy = [m for m in loaded if m.split(".")[0] in ("numpy", "PIL", "duckdb")]
    assert not heavy, f"parsing manifests imported {heavy}"


def test_shows_full_path_imports_only_the_recipes_of_what_it_shows(tmp_path):
    """The first `registry show` after a change (no answer to replay: cli/answers.py)
    computes keys and reads markers: it imports the recipes of the dataset shown and of
    what it is made from (calibration builds on select), no other recipe, and none of the
    build machinery (executors, image checks, resume, cache transfers, the Output recipes
    write through, substituters' hashing threads), the reports, DuckDB, Pillow or numpy (a
    cached source fingerprint is read without the readers: sources/indexing.py), nor
    traceback (core.failures imports it to print one)."""
    from dataset_registry.plugins import BUILTIN

    from .conftest import MANIFESTS

    shown = "imagenet-calibration-first.1"
    code = ("import sys, json, io, contextlib\n"
            "from dataset_registry.cli import main\n"
            "out = io.StringIO()\n"
            "with contextlib.redirect_stdout(out):\n"
            f"    rc = main(['--manifests', {str(MANIFESTS)!r}, 'show', {shown!r}])\n"
            "print(json.dumps([rc, json.loads(out.getvalue()), sorted(sys.modules)]))\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    rc, answer, loaded = json.loads(run.stdout)
    assert (rc, answer["name"], answer["recipe"]) == (0, shown, "calibration")
    assert "dataset_registry.domains.imagenet.recipes" in loaded  # the recipe shown
    other_recipes = {target.partition(":")[0] for name, target in BUILTIN["recipes"].items()
                     if name != "select"} | {"dataset_registry.recipes.builtins"}
    assert not other_recipes & set(loaded), sorted(other_recipes & set(loaded))
    heavy = ("dataset_registry.executors", "dataset_registry.engine.resolving",
             "dataset_registry.engine.inputs", "dataset_registry.engine.imagechecks",
             "dataset_registry.engine.resume", "dataset_registry.engine.transfers",
             "dataset_registry.artifact.output", "dataset_registry.reports.audit",
             "dataset_registry.reports.card", "duckdb", "PIL", "numpy",
             "dataset_registry.sources.indexing", "concurrent.futures", "logging",
             "traceback")
    assert not [m for m in loaded if m.startswith(heavy)], \
        [m for m in loaded if m.startswith(heavy)]
