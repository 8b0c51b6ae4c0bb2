"""The registration mechanism: built-ins, entry points of installed distributions, and a
project's registry.toml, all lazy."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from dataset_registry import plugins
from dataset_registry.plugins import BUILTIN, PluginError, Plugins


def test_listing_the_builtins_imports_no_implementation():
    code = ("import sys; from dataset_registry import plugins; "
            "print(plugins.names('recipes')); "
            "print(sorted(m for m in sys.modules if m.startswith(('dataset_registry.recipes', "
            "'dataset_registry.domains'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    # the built-ins, and ImageNet's calibration from this package's own entry point
    assert eval(out[0]) == sorted([*BUILTIN["recipes"], "calibration"])
    assert out[1] == "[]"


def test_get_imports_the_target_once():
    table = Plugins(BUILTIN)
    select = table.get("recipes", "select")
    assert select.name == "select" and table.get("recipes", "select") is select
    assert table.origin("recipes", "select") == "built in"


def test_unknown_names_and_kinds_list_what_is_registered():
    table = Plugins(BUILTIN)
    with pytest.raises(PluginError, match=r"unknown recipe 'nope' \(registered: byclass, "
                                          r"calibration, downscale"):
        table.get("recipes", "nope")
    with pytest.raises(PluginError, match="unknown plugin kind 'widgets'"):
        table.get("widgets", "x")


def test_a_clash_names_both_origins_unless_clobbered():
    table = Plugins(BUILTIN)
    table.register("recipes", "select", "dataset_registry.recipes.select:Select")  # same: fine
    with pytest.raises(PluginError, match="recipe 'select' from mine clashes with the one "
                                          "from built in"):
        table.register("recipes", "select", "x:Y", origin="mine")
    table.register("recipes", "select", "x:Y", origin="mine", clobber=True)
    with pytest.raises(PluginError, match=r"'x:Y' \(from mine\) does not import"):
        table.get("recipes", "select")


def test_entry_points_of_an_installed_distribution(tmp_path, monkeypatch):
    (tmp_path / "outside_plugin.py").write_text("class Echo:\n    name = 'echo'\n")
    dist = tmp_path / "outside_plugin-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: outside-plugin\nVersion: 1.2\n")
    (dist / "entry_points.txt").write_text("[dataset_registry.recipes]\n"
                                           "echo = outside_plugin:Echo\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    table = Plugins(BUILTIN)
    assert "echo" in table.names("recipes")
    assert table.get("recipes", "echo").name == "echo"
    assert table.origin("recipes", "echo") == \
        "entry point dataset_registry.recipes:echo of outside-plugin 1.2"


def test_a_project_registry_toml_names_its_plugin_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    (tmp_path / "registry.toml").write_text('plugins = ["project_recipes_x"]\n')
    (tmp_path / "project_recipes_x.py").write_text(textwrap.dedent("""
        from dataset_registry.plugins import register

        class Echo:
            name = "echo-x"

        register("recipes", "echo-x", Echo, origin="project_recipes_x")
    """))
    monkeypatch.syspath_prepend(str(tmp_path))  # undone after the test
    assert plugins.load_project(str(tmp_path)) == ["project_recipes_x"]
    assert plugins.get("recipes", "echo-x").name == "echo-x"
    assert plugins.load_project(str(tmp_path)) == []  # once per project
    sys.modules.pop("project_recipes_x", None)


@pytest.mark.parametrize("text, message", [
    ('plugins = "one"\n', "plugins must be a list of module names"),
    ('plugins = ["no_such_module_zz"]\n', "plugin module 'no_such_module_zz' does not import"),
    ("plugins = [\n", "not valid TOML"),
])
def test_bad_registry_toml_names_the_file(tmp_path, text, message):
    (tmp_path / "registry.toml").write_text(text)
    with pytest.raises(PluginError, match=message) as info:
        Plugins(BUILTIN).load_project(str(tmp_path))
    assert str(tmp_path / "registry.toml") in str(info.value)
    assert info.value.exit_code == 2


def test_no_registry_toml_is_no_plugins(tmp_path):
    assert Plugins(BUILTIN).load_project(str(tmp_path)) == []


def test_every_builtin_imports():
    table = Plugins(BUILTIN)
    for kind in plugins.KINDS:
        for name in table.names(kind):
            assert table.get(kind, name) is not None


def test_the_recipe_table_is_the_plugin_table(monkeypatch):
    from dataset_registry.recipes import BUILT_IN, RECIPES

    assert sorted(RECIPES) == sorted([*BUILTIN["recipes"], "calibration"])  # + ImageNet's
    for recipe in BUILT_IN:  # each built-in is registered under its own name
        assert RECIPES[recipe.name] is recipe
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    plugins.register("recipes", "echo-y", BUILT_IN[0])
    assert "echo-y" in RECIPES and RECIPES.get("nope") is None
