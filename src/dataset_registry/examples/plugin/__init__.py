"""`registry init --example plugin`: a project with a plugin of its own. `my_plugin.py`
(a layout and a recipe, registered when the project's registry.toml names it) is written
beside registry.toml, `manifests/` into the project's manifests folder. The module is
package data, not part of dataset_registry: nothing imports it here."""

from __future__ import annotations

from importlib import resources

from ...init import Example

_HERE = resources.files(__package__)

EXAMPLE = Example("a project with its own plugin: a layout and a recipe in my_plugin.py, "
                  "named in registry.toml", "my-photos", manifests=_HERE / "manifests",
                  plugins={"my_plugin": _HERE / "my_plugin.py"})
