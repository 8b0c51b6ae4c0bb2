"""The layout conformance suite: a layout's test module subclasses `LayoutSuite`, naming
the layout (and its options) and writing a sample source into a folder. For an outside
layout:

    from dataset_registry.testing.layouts import LayoutSuite

    class TestMyLayout(LayoutSuite):
        layout = "my-layout"                   # its registered name
        def write_source(self, folder):        # the files of a small sample source
            write_image_folder(folder)         # or anything the layout reads

A layout conforms when the same files index the same as a folder and as a tar (names,
splits, classes, attributes, bytes), when logical names are unique within a split, when
OS litter and hidden files (`layouts.ignored`) change nothing, and when moving the
source leaves its fingerprint (so every key built from it) unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, ClassVar

import pytest

from .sources import folder_files, open_project, write_files, write_tar

LITTER = {".DS_Store": b"\0\0\0\1Bud1", "Thumbs.db": b"\xd0\xcf\x11\xe0", "desktop.ini":
          b"[.ShellClassInfo]\n", "__MACOSX/._img.png": b"\0\5\26\7", ".hidden/img.png":
          b"\x89PNG\r\n\x1a\n", ".git/config": b"[core]\n"}
"""What a desktop leaves in a folder; `write_source`'s first folder gets some too."""


class LayoutSuite:
    """Every layout: subclass it, set `layout` (and `options`), define `write_source`."""

    layout: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}

    def write_source(self, folder: Path) -> None:
        raise NotImplementedError("each layout's test module writes its sample source")

    def sets(self, root: Path, location: Path) -> tuple[Any, dict[str, Any]]:
        """(the registry, {split: MemberSet}) of `location` read with the layout."""
        from ..sources.index import member_sets

        reg = open_project(root, {"data": location}, layout=self.layout, options=self.options)
        return reg, member_sets(reg.resolver.source_info("data"))

    def described(self, sets: dict[str, Any]) -> dict[str, list[tuple[Any, ...]]]:
        """Everything a recipe can see of each member, bytes by hash, by split."""
        import xxhash

        from ..sources.members import read_members

        return {split: sorted((ref.name, ref.origin.removeprefix("./"), ref.label, ref.attrs,
                               xxhash.xxh3_128_hexdigest(data))
                              for ref, data in read_members(list(members)))
                for split, members in sorted(sets.items())}

    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        folder = tmp_path / "source"
        folder.mkdir()
        self.write_source(folder)
        return folder

    def test_a_folder_and_a_tar_index_the_same(self, folder, tmp_path) -> None:
        from ..sources.layouts import layout_class

        cls = layout_class(self.layout)
        if not (cls.folder and cls.tar):
            pytest.skip(f"layout {self.layout} reads only a {'folder' if cls.folder else 'tar'}")
        _, as_folder = self.sets(tmp_path / "f", folder)
        tar = write_tar(tmp_path / "source.tar", folder_files(folder))
        _, as_tar = self.sets(tmp_path / "t", tar)
        assert self.described(as_folder) == self.described(as_tar)
        assert sum(len(m) for s, m in as_folder.items() if s != "meta") > 0, \
            "the sample source has no images: the test tests nothing"

    def test_logical_names_are_unique_within_a_split(self, folder, tmp_path) -> None:
        _, sets = self.sets(tmp_path, folder)
        for split, members in sets.items():
            names = [ref.name for ref in members]
            assert len(set(names)) == len(names), f"split {split}: a name twice"

    def test_litter_and_hidden_files_change_nothing(self, folder, tmp_path) -> None:
        _, clean = self.sets(tmp_path / "clean", folder)
        first = next((p for p in sorted(folder.iterdir()) if p.is_dir()), folder)
        write_files(folder, LITTER)
        write_files(first, LITTER)
        _, littered = self.sets(tmp_path / "littered", folder)
        assert self.described(littered) == self.described(clean)

    def test_the_fingerprint_survives_a_move(self, folder, tmp_path) -> None:
        reg, _ = self.sets(tmp_path / "before", folder)
        before = reg.key("data")
        moved = tmp_path / "elsewhere" / "renamed"
        moved.parent.mkdir()
        shutil.move(str(folder), str(moved))
        reg, _ = self.sets(tmp_path / "after", moved)
        assert reg.key("data") == before
