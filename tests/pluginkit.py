"""A project whose registry.toml names a plugin module of its own, as a user writes one:
what the tests of plugins failing (tests/core/test_failures.py, tests/test_plugins.py,
tests/stores/) run the `registry` command on."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from dataset_registry.testing.sources import write_image_folder

from .conftest import run_cli, write_manifest

SOURCE = "sources:\n  - {name: data, layout: image-folder}\n"
"""The manifest's first two lines: the source `data`, 12 images in 3 class folders."""


def plugin_project(root: Path, modules: dict[str, str], datasets: str = "") -> Path:
    """`root` with registry.toml naming `modules` (name -> code, written beside it, in
    order), the source `data` set, and a manifest of `datasets` (YAML list entries,
    indented by two, the first on line 4)."""
    root.mkdir(parents=True, exist_ok=True)
    names = ", ".join(f'"{m}"' for m in modules)
    (root / "registry.toml").write_text(f"# a project with plugins\nplugins = [{names}]\n")
    for module, code in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(code))
    write_image_folder(root / "data", 12, 3)
    write_manifest(root, SOURCE + (f"datasets:\n{datasets}" if datasets else ""))
    done = run_cli("source", "set", "data", str(root / "data"), cwd=root)
    assert done.returncode == 0, done.stderr
    return root


def published(root: Path) -> list[str]:
    """What a reader of the project's store could see: artifact folders, and anything left
    in staging."""
    store = root / "registry"
    found = [p.name for p in store.glob("??/*")] if store.is_dir() else []
    staging = store / ".staging"
    return found + ([f".staging/{p.name}" for p in staging.iterdir()] if staging.is_dir()
                    else [])


def done_records(staging: Path) -> list[dict]:
    """The done records in the staging areas under `staging` (a store's `.staging`): the
    whole lines of each one's `.parts/done.log` (engine/resume.py), a line being
    appended left out."""
    return [json.loads(line) for log in sorted(staging.glob("*/.parts/done.log"))
            for line in log.read_bytes().split(b"\n")[:-1]]
