"""The recipe conformance suite: a recipe's test module subclasses `RecipeSuite`, naming
the recipe, its manifest entry's inputs and params, and a changed value for each param;
it builds over the generic synthetic source (`testing.sources`). For an outside recipe:

    from dataset_registry.testing.recipes import RecipeSuite

    class TestMyRecipe(RecipeSuite):
        recipe = MyRecipe                      # registered for the test if it is not yet
        params = {"size": 8}                   # the manifest entry's params
        vary = {"size": 16, "split": "val"}    # every param: another value (a new key)

A recipe conforms when plan/run/finish give the same digest with one worker and two,
when a `Plan`'s context reaches a `finish` that takes it,
when changing any param changes the key, when every output path is a clean relative
path listed once in the file table, and (if it has `on_error`) when an image no decoder
reads fails the build naming the member, or is skipped and recorded.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest

from ..errors import BadImageError
from ..recipes.base import Plan, Recipe, takes_context
from ..stores.base import FILES, MARKER, SKIPPED
from .registration import registered
from .sources import BROKEN_IMAGE, open_project, write_image_folder

BROKEN = "class-1/img-0013.jpg"  # a member no decoder reads, among the synthetic images
_UNPORTABLE = re.compile(r'[\x00-\x1f\x7f<>:"|?*\\]')  # what Windows or a shell trips on


def path_problem(path: str) -> str | None:
    """Why `path` is not a clean, portable, relative output path (None if it is)."""
    if not path or path.startswith("/") or path != posixpath.normpath(path):
        return "not a normal relative path"
    if any(part in ("", ".", "..") for part in path.split("/")):
        return "has an empty, '.' or '..' part"
    if _UNPORTABLE.search(path):
        return "has a control character or one of <>:\"|?*\\"
    if path in (FILES, SKIPPED, MARKER):
        return "is a name the registry keeps for itself"
    return None


class RecipeSuite:
    """Every recipe: subclass it and set `recipe`, `params` and `vary`."""

    recipe: ClassVar[type[Recipe]]
    inputs: ClassVar[dict[str, str]] = {"images": "data"}  # role -> source or dataset name
    params: ClassVar[dict[str, Any]] = {}
    vary: ClassVar[dict[str, Any]] = {}  # param -> a value other than `params`' (or default)
    unvaried: ClassVar[dict[str, str]] = {}  # param -> why the suite cannot vary it
    images: ClassVar[int] = 24
    classes: ClassVar[int] = 3

    @pytest.fixture(scope="class")
    @classmethod
    def source(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        """The image-folder source `data` (override to give the recipe another)."""
        return write_image_folder(tmp_path_factory.mktemp("source") / "data", cls.images,
                                  cls.classes)

    @pytest.fixture(autouse=True)
    def _registered(self) -> Iterator[None]:
        """The recipe, registered for the test if it is not yet (and only for the test)."""
        from .. import plugins

        if self.recipe.name in plugins.names("recipes"):
            yield
            return
        with registered("recipes", self.recipe.name, self.recipe,
                        origin=f"{type(self).__name__} (dataset_registry.testing)"):
            yield

    def project(self, root: Path, source: Path, params: dict[str, Any] | None = None,
                **registry: Any) -> Any:
        """A registry at `root` whose dataset `out` is the recipe over `source`."""
        entry = {"name": "out", "recipe": self.recipe.name, "inputs": dict(self.inputs),
                 "params": self.params if params is None else params}
        return open_project(root, {"data": source}, [entry], **registry)

    def test_one_and_two_workers_give_the_same_digest(self, source, tmp_path) -> None:
        one = self.project(tmp_path / "one", source).resolve("out", jobs=1)
        reg = self.project(tmp_path / "two", source)
        two = reg.resolve("out", jobs=2)
        assert one.key == two.key and one.digest == two.digest
        assert one.marker.files > 0, "the recipe wrote nothing: the test tests nothing"
        assert reg.verify(["out"]) == {"out": []}

    def test_every_param_changes_the_key(self, source, tmp_path) -> None:
        fields = set(self.recipe.Params.model_fields)
        unknown = sorted(set(self.vary) - fields)
        assert not unknown, f"vary names what {self.recipe.Params.__name__} lacks: {unknown}"
        missing = sorted(fields - set(self.vary) - set(self.unvaried))
        assert not missing, f"give vary (or unvaried, with why) a value for: {missing}"
        keys = {"as given": self.project(tmp_path / "base", source).key("out")}
        for i, (name, value) in enumerate(sorted(self.vary.items())):
            assert value != self.params.get(name, self.recipe.Params.model_fields[name].default)
            reg = self.project(tmp_path / f"v{i}", source, {**self.params, name: value})
            keys[name] = reg.key("out")
        same = [n for n in keys if list(keys.values()).count(keys[n]) > 1]
        assert not same, f"these give one key: {same}"

    def test_finish_takes_the_context_plan_hands_it(self, source, tmp_path) -> None:
        """What `plan` worked out reaches `finish` (a `Plan`'s context), so `finish` need
        not plan again: a recipe whose plan returns one takes it in `finish`."""
        reg = self.project(tmp_path, source)
        node = reg.manifests.get("out")
        inputs, _, _ = reg.resolver.inputs(node)
        tasks = self.recipe.plan(node.params, inputs)
        assert isinstance(tasks, list) and len(tasks) > 0, "plan gave no tasks"
        if isinstance(tasks, Plan):
            assert takes_context(self.recipe), \
                f"{self.recipe.__name__}.plan returns a context its finish does not take"

    def test_output_paths_are_clean_and_listed_once(self, source, tmp_path) -> None:
        import duckdb

        ds = self.project(tmp_path, source).resolve("out", jobs=1)
        table = os.path.join(ds.path, FILES).replace("'", "''")
        paths = [p for (p,) in duckdb.sql(f"SELECT path FROM '{table}' WHERE record IS NULL "
                                          "ORDER BY path").fetchall()]
        bad = {p: why for p in paths if (why := path_problem(p))}
        assert not bad
        assert len({p.casefold() for p in paths}) == len(paths), "two paths differ in case only"
        on_disk = sorted(p.relative_to(ds.path).as_posix() for p in Path(ds.path).rglob("*")
                         if p.is_file())
        assert sorted([*paths, FILES, MARKER]) == [p for p in on_disk if p != SKIPPED]

    def test_an_unreadable_image_is_handled_per_on_error(self, tmp_path) -> None:
        if "on_error" not in self.recipe.Params.model_fields:
            pytest.skip(f"{self.recipe.name} has no on_error")
        source = write_image_folder(tmp_path / "data", self.images, self.classes,
                                    extra={BROKEN: BROKEN_IMAGE})
        reg = self.project(tmp_path / "fail", source, {**self.params, "on_error": "fail"})
        with pytest.raises(BadImageError, match=re.escape(BROKEN)):
            reg.resolve("out", jobs=1)
        assert reg.status("out") == "missing" and list(reg.store.committed()) == []
        ds = self.project(tmp_path / "skip", source, {**self.params, "on_error": "skip"}
                          ).resolve("out", jobs=1)
        assert ds.marker.skipped == 1
        import duckdb

        skipped = os.path.join(ds.path, SKIPPED).replace("'", "''")
        (member,) = duckdb.sql(f"SELECT member FROM '{skipped}'").fetchall()[0]
        assert member.endswith(BROKEN)
