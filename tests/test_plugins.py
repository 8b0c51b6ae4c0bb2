"""The registration mechanism: built-ins, entry points of installed distributions, and a
project's registry.toml, all lazy."""

from __future__ import annotations

import re
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
    (tmp_path / "outside_plugin.py").write_text(
        "from dataset_registry.testing import echo\n\nclass Echo(echo.Echo):\n    pass\n")
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


def test_entry_points_load_without_reading_a_distribution_metadata(tmp_path, monkeypatch):
    """Parsing METADATA (~2 ms a distribution) waits for a message naming an origin: a
    `show` looks its recipe up by name and never says where it came from."""
    from importlib.metadata import entry_points

    read: list[str] = []

    def counting(metadata: property) -> property:
        def counted(dist):
            read.append(dist._normalized_name)
            return metadata.fget(dist)
        return property(counted)

    # the classes the entry points' distributions really have: once `distributed` is
    # imported (the Dask tests), the importlib_metadata backport's finder serves the
    # standard library's entry_points() with its own PathDistribution
    for kind in {type(ep.dist) for ep in entry_points().select(group="dataset_registry.recipes")}:
        monkeypatch.setattr(kind, "metadata", counting(kind.metadata))
    table = Plugins(BUILTIN)
    assert "calibration" in table.names("recipes")  # the package's own entry point
    assert table.get("recipes", "calibration").name == "calibration"
    assert read == []
    origin = table.origin("recipes", "calibration")
    assert re.fullmatch(r"entry point dataset_registry\.recipes:calibration of "
                        r"dataset-registry \S+", origin), origin
    assert table.origin("schemes", "imagenet").endswith(origin.rpartition(" of ")[2])
    assert read == ["dataset_registry"]  # once, for both of its entries


def test_a_project_registry_toml_names_its_plugin_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    (tmp_path / "registry.toml").write_text('plugins = ["project_recipes_x"]\n')
    (tmp_path / "project_recipes_x.py").write_text(textwrap.dedent("""
        from dataset_registry.plugins import register
        from dataset_registry.testing import echo

        class Echo(echo.Echo):
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


GOOD = '''
from dataset_registry.plugins import register
from dataset_registry.testing import echo


class Good(echo.Echo):
    name = "good"


register("recipes", "good", Good)
'''
FIRST_HALF = '''
from dataset_registry.plugins import register
from dataset_registry.testing import echo


class Mine(echo.Echo):
    name = "mine"


register("recipes", "mine", Mine)  # registered, then the module fails: taken back
'''
BROKEN = [  # what the module does after registering `mine`; what the warning says of it
    ("1 / 0\n", "ZeroDivisionError: division by zero"),
    ("x = = 1\n", "SyntaxError: invalid syntax (my_recipes.py, line 1)"),
    ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
    ("import no_such_module_zz\n", "ModuleNotFoundError: No module named 'no_such_module_zz'"),
    ('register("recipes", "select", Mine)\n', "PluginError: recipe 'select' from plugin "
     "my_recipes ({where}) clashes with the one from built in; rename one of them"),
]


def broken_project(root, tail: str, datasets: str = ""):
    from .pluginkit import plugin_project

    # a SyntaxError fails the whole file: the registration above it never runs either
    code = tail if tail.startswith("x = =") else FIRST_HALF + tail
    return plugin_project(root, {"good_recipes": GOOD, "my_recipes": code}, datasets)


@pytest.mark.parametrize("tail, error", BROKEN)
def test_a_plugin_failing_at_import_is_recorded_and_taken_back(tmp_path, monkeypatch, capsys,
                                                               tail, error):
    """Whatever it raises: recorded with its registry.toml line, warned about once, what it
    registered before failing taken back; the project's other plugins load."""
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    monkeypatch.syspath_prepend(str(tmp_path))  # undone after the test
    for module in ("good_recipes", "my_recipes"):
        monkeypatch.delitem(sys.modules, module, raising=False)
    root = broken_project(tmp_path, tail)
    capsys.readouterr()
    where = f"{root / 'registry.toml'}:2"  # the line naming it
    error = error.format(where=where)
    assert plugins.load_project(str(root)) == ["good_recipes"]
    assert [str(b) for b in plugins.PLUGINS.broken] == \
        [f"{where}: plugin 'my_recipes' failed to import: {error}"]
    assert capsys.readouterr().err == (f"warning: {where}: plugin 'my_recipes' failed to "
                                       f"import: {error}; what it registers is unavailable "
                                       "(run with --debug for the traceback)\n")
    assert "good" in plugins.names("recipes") and "mine" not in plugins.names("recipes")
    assert plugins.get("recipes", "select").__module__ == "dataset_registry.recipes.select"
    with pytest.raises(PluginError) as info:
        plugins.get("recipes", "mine")
    assert str(info.value).endswith(f"); {where}: plugin 'my_recipes' failed to import: {error}")
    assert plugins.PLUGINS.broken[0].details.startswith("Traceback (most recent call last):")


@pytest.mark.parametrize("tail, error", BROKEN[:3])
def test_through_the_cli_only_what_needs_the_broken_plugin_fails(tmp_path, tail, error):
    from .conftest import run_cli, write_manifest

    root = broken_project(tmp_path, tail, "  - {name: g, recipe: good, inputs: {images: data}}\n")
    where = f"{root / 'registry.toml'}:2"
    warning = (f"warning: {where}: plugin 'my_recipes' failed to import: {error}; what it "
               "registers is unavailable (run with --debug for the traceback)\n")
    helped = run_cli("--help", cwd=root)
    assert (helped.returncode, helped.stderr) == (0, warning)
    assert "resolve " in helped.stdout and "synth " in helped.stdout
    listed = run_cli("list", cwd=root)
    assert (listed.returncode, listed.stderr) == (0, warning)
    assert listed.stdout.splitlines()[1:] == ["data\tsource\timage-folder\tready\t",
                                              "g\tdataset\tgood\tmissing\t"]
    queried = run_cli("sql", "SELECT 41 + 1 AS answer", "--format", "csv", cwd=root)
    assert (queried.returncode, queried.stdout) == (0, "answer\n42\n")
    manifest = (root / "manifests" / "test.yaml").read_text()
    write_manifest(root, manifest + "  - {name: m, recipe: mine, inputs: {images: data}}\n")
    needed = run_cli("list", cwd=root)
    assert needed.returncode == 2 and needed.stdout == ""
    assert needed.stderr == warning + (
        "registry: error: manifests/test.yaml:5: datasets[1].recipe: unknown recipe 'mine' "
        "(known: byclass, calibration, downscale, good, recordio, sample, select, tfrecord, "
        f"webdataset); {where}: plugin 'my_recipes' failed to import: {error}\n")
    debug = run_cli("--debug", "list", cwd=root)  # the import's traceback, with the warning
    assert debug.stderr.startswith(f"warning: {where}: plugin 'my_recipes' failed to import: "
                                   f"{error}; what it registers is unavailable\nTraceback")
    assert f'File "{root / "my_recipes.py"}", line' in debug.stderr


INCOMPLETE = '''
from typing import ClassVar

from dataset_registry.plugins import register
from dataset_registry.recipes import InputSpec, Params, Recipe


class NoVersion(Recipe):
    name = "nover"  # and no version
    Params = Params
    inputs: ClassVar = {"images": InputSpec("images")}

    @classmethod
    def plan(cls, params, inputs):
        return []

    @classmethod
    def run(cls, params, task, out):
        return 0


register("recipes", "nover", "my_recipes:NoVersion")
'''


def test_a_recipe_without_version_is_a_plugin_error_naming_it(tmp_path, monkeypatch):
    from dataset_registry.testing.echo import Echo

    class NoVersion(Echo):
        name = "nover"

    NoVersion.version = None  # type: ignore[assignment]
    table = Plugins(BUILTIN)
    with pytest.raises(PluginError) as info:  # an object is checked as it is registered
        table.register("recipes", "nover", NoVersion, origin="mine")
    assert str(info.value) == (
        "recipe 'nover' (test_a_recipe_without_version_is_a_plugin_error_naming_it.<locals>"
        ".NoVersion, from mine) is not a complete recipe: `version` is None, not an int, "
        "raised whenever what the recipe writes changes")
    assert "nover" not in table.names("recipes")

    class NotARecipe:
        name = "x"

    table.register("recipes", "x", f"{__name__}:NOT_A_RECIPE", origin="mine")
    monkeypatch.setattr(sys.modules[__name__], "NOT_A_RECIPE", NotARecipe, raising=False)
    with pytest.raises(PluginError) as info:  # a "module:Object" target on its first lookup
        table.get("recipes", "x")
    assert str(info.value) == (
        f"recipe 'x' ({__name__}:NOT_A_RECIPE, from mine) is not a complete recipe: no "
        "`version` (an int, raised whenever what the recipe writes changes); no `Params` "
        "(a dataset_registry.recipes.Params subclass); no `inputs` (a mapping of role to "
        "InputSpec); no `plan` classmethod; no `run` classmethod")


def test_through_the_cli_a_recipe_without_version_is_exit_2_naming_it(tmp_path):
    from .conftest import run_cli, write_manifest
    from .pluginkit import SOURCE, plugin_project

    root = plugin_project(tmp_path, {"my_recipes": INCOMPLETE})
    write_manifest(root, SOURCE + "datasets:\n  - {name: n, recipe: nover, inputs: {images: "
                   "data}}\n")
    done = run_cli("resolve", "n", cwd=root)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "registry: error: recipe 'nover' (my_recipes:NoVersion, from plugin my_recipes "
        f"({root / 'registry.toml'}:2)) is not a complete recipe: no `version` (an int, "
        "raised whenever what the recipe writes changes)\n")
    assert not (root / "registry").exists()


def test_a_module_run_again_replaces_its_own_registrations(tmp_path, monkeypatch):
    """A reload (or a new version shipped to a Dask worker: executors/project_code.py)
    registers new objects at the same module and name: they replace the old ones. Another
    module's object of the same name still clashes."""
    import importlib

    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    module = tmp_path / "project_recipes_again.py"
    module.write_text(textwrap.dedent("""
        from dataset_registry.plugins import register
        from dataset_registry.testing import echo

        class Echo(echo.Echo):
            name = "echo-again"
            version = 1

        register("recipes", "echo-again", Echo)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        first = importlib.import_module("project_recipes_again")
        assert plugins.get("recipes", "echo-again").version == 1
        module.write_text(module.read_text().replace("version = 1", "version = 2"))
        importlib.invalidate_caches()
        again = importlib.reload(first)
        assert plugins.get("recipes", "echo-again") is again.Echo
        assert again.Echo.version == 2

        class Echo(again.Echo):  # same name, another module (this one)
            pass

        with pytest.raises(PluginError, match="recipe 'echo-again' from register"):
            plugins.register("recipes", "echo-again", Echo)
    finally:
        sys.modules.pop("project_recipes_again", None)


def test_project_modules_are_what_was_imported_from_beside_registry_toml(tmp_path,
                                                                          monkeypatch):
    """The plugin, what it imports from the project folder (a module, a package), and
    nothing installed elsewhere: what the Dask executor ships to a cluster."""
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    (tmp_path / "registry.toml").write_text('plugins = ["project_recipes_z"]\n')
    (tmp_path / "project_recipes_z.py").write_text(
        "import project_helper_z\nimport project_pkg_z.sub\nimport dataset_registry\n")
    (tmp_path / "project_helper_z.py").write_text("")
    (tmp_path / "project_pkg_z").mkdir()
    (tmp_path / "project_pkg_z" / "__init__.py").write_text("")
    (tmp_path / "project_pkg_z" / "sub.py").write_text("")
    (tmp_path / "not_imported_z.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        assert plugins.load_project(str(tmp_path)) == ["project_recipes_z"]
        assert plugins.project_modules() == {
            "project_recipes_z": str(tmp_path / "project_recipes_z.py"),
            "project_helper_z": str(tmp_path / "project_helper_z.py"),
            "project_pkg_z": str(tmp_path / "project_pkg_z")}
    finally:
        for name in ("project_recipes_z", "project_helper_z", "project_pkg_z",
                     "project_pkg_z.sub"):
            sys.modules.pop(name, None)


def test_a_project_without_plugins_has_no_project_modules(tmp_path, monkeypatch):
    monkeypatch.setattr(plugins, "PLUGINS", Plugins(BUILTIN))
    (tmp_path / "registry.toml").write_text("# plugins = []\n")
    assert plugins.load_project(str(tmp_path)) == []
    assert plugins.project_modules() == {}
