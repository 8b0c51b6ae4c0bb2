"""The core imports nothing from the domains it ships (domains/, e.g. ImageNet): they
come in through entry points, like any outside plugin. Every import statement counts,
inside functions too, relative ones resolved."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import dataset_registry

PACKAGE = Path(dataset_registry.__file__).parent
DOMAINS = "dataset_registry.domains"



def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, module: str | None = None) -> set[str]:
    """Every module an import statement in `path` (the module `module`, by default its
    name in the package) names: `from a import b` gives a and a.b."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def core_modules() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py"))
            if "domains" not in p.relative_to(PACKAGE).parts]


def crosses(names: set[str]) -> list[str]:
    return sorted(n for n in names if n == DOMAINS or n.startswith(DOMAINS + "."))


def test_the_walk_sees_relative_and_nested_imports(tmp_path):
    # the check itself: an import inside a function, relative or absolute, is caught
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\ndef f():\n    from ..domains.imagenet import labels\n\n"
                     "class C:\n    def g(self):\n        import dataset_registry.domains\n")
    names = imported(probe, "dataset_registry.recipes.probe")
    assert crosses(names) == ["dataset_registry.domains", "dataset_registry.domains.imagenet",
                              "dataset_registry.domains.imagenet.labels"]
    package = tmp_path / "__init__.py"
    package.write_text("from .domains import imagenet\n")
    assert crosses(imported(package, "dataset_registry")) == [
        "dataset_registry.domains", "dataset_registry.domains.imagenet"]
    # and on the real tree: select's `from .base` and `from ..errors` resolve
    names = imported(PACKAGE / "recipes" / "select.py")
    assert {"dataset_registry.recipes.base", "dataset_registry.errors"} <= names


def test_no_core_module_imports_a_domain():
    offenders = {}
    seen = 0
    for path in core_modules():
        name = module_name(path)
        seen += 1
        bad = crosses(imported(path))
        if bad:
            offenders[name] = bad
    assert seen > 40  # the walk found the package
    assert offenders == {}, f"core modules importing a domain: {offenders}"


def test_a_generic_build_loads_no_domain(tmp_path):
    """Importing the recipes and building one over a generic source, in a fresh process,
    leaves no module of dataset_registry.domains in sys.modules."""
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "data" / "b").mkdir()
    from PIL import Image

    for cls, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        Image.new("RGB", (8, 8), colour).save(tmp_path / "data" / cls / f"{cls}.png")
    (tmp_path / "manifests").mkdir()
    (tmp_path / "manifests" / "m.yaml").write_text(textwrap.dedent("""
        sources:
          - {name: pics, layout: image-folder}
        datasets:
          - {name: folders, recipe: byclass, inputs: {images: pics}}
          - {name: shards, recipe: webdataset, inputs: {images: pics}}
          - name: small
            recipe: downscale
            inputs: {images: pics}
            params: {width: 4, height: 4, classes: [a]}
        """))
    code = textwrap.dedent(f"""
        import sys
        import dataset_registry.recipes
        from dataset_registry import Registry
        reg = Registry.open({str(tmp_path)!r})
        reg.set_source("pics", {str(tmp_path / "data")!r})
        for name in ("folders", "shards", "small"):
            reg.resolve(name, jobs=1)
        print(sorted(m for m in sys.modules if m.startswith({DOMAINS!r})))
        """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
