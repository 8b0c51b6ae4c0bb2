"""`registry init`: a new project folder, optionally with an example manifest.

A project is `registry.toml`, `manifests/` and a `.gitignore` for what the registry
writes beside them (the store, the catalog, the state folder), with the manifests of
an `Example`: a plugin kind (`examples`, entry-point group `dataset_registry.examples`),
so a domain ships its own. Built in: `image-folder`, a short commented manifest for
"my own images, one folder per class", and `plugin`, a project with its own plugin
module (a layout and a recipe, `examples/plugin/`); the ImageNet plugin registers
`imagenet`, the shipped manifests (package data, so they work from an installed wheel).

Everything is written into a private folder inside the project first and moved into
place at the end, so a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable

from .errors import BadInputError, PluginError, did_you_mean


@dataclass(frozen=True)
class Example:
    """What `registry init --example NAME` writes into `manifests/`: a folder's files
    (`manifests`, e.g. a package's data), or `files` by relative path. `first_source`
    is the source the new user points at their data first (the hint init prints).
    `plugins`: plugin modules by name, their source text (or a package file holding it),
    written beside registry.toml as NAME.py and named in its `plugins` list."""

    description: str
    first_source: str
    manifests: Traversable | None = None
    files: Mapping[str, str] = field(default_factory=dict)
    plugins: Mapping[str, str | Traversable] = field(default_factory=dict)


IGNORED = ("registry/", "catalog.duckdb*", ".registry-state/")

CONFIG = """\
# A dataset-registry project (written by `registry init`). Commands run in this folder
# (or with --root pointing at it) read manifests/*.yaml and write beside them.

# Python modules, importable from this folder, that register recipes, layouts, stores
# or executors (`dataset_registry.plugins.register`). They are Python code run with your
# rights (and your workers'): list only modules you trust.
# plugins = []

# Where things live. These are the defaults; override them per command with --manifests,
# --store and --catalog, or with the environment variables below.
#   manifests  ./manifests          DATASET_REGISTRY_MANIFESTS
#   store      ./registry           DATASET_REGISTRY_STORE (a folder, or s3://bucket/prefix)
#   catalog    ./catalog.duckdb     DATASET_REGISTRY_CATALOG (DuckDB; rebuilt from the store)
#   state      ./.registry-state    DATASET_REGISTRY_STATE (source locations, caches)
"""

IMAGE_FOLDER = """\
# My own images, one folder per class (as torchvision's ImageFolder reads them):
#
#   my-images/cat/0001.jpg  my-images/cat/0002.png  ...  my-images/dog/0001.jpg  ...
#
# Point the source at your folder (or a tar of it) once, then build:
#   registry source set my-images /path/to/my-images
#   registry resolve my-images-32x32
# Keys come from the images' content, the recipes and their params: the same images
# and the same seed give the same split, byte for byte, on any machine.

sources:
  - name: my-images
    # image-folder: <class>/<file>, or <split>/<class>/<file>; a metadata.csv/.jsonl
    # with a file_name column may add labels and other columns (Hugging Face's way).
    # Other layouts: `files` (a tar or folder of files + labels.csv / .jsonl / .parquet
    # with file_name and label columns; options: {table: my-labels.csv}), `webdataset`
    # (existing WebDataset shards: <key>.jpg + <key>.cls; a classes.txt beside them
    # names the labels). `registry source set` says what is wrong with a source.
    layout: image-folder
    description: my own images, one folder per class
    # The card: shown by `registry show`, kept with every build; never part of a key.
    license: ""        # the terms these images may be used under
    homepage: ""
    citation: ""
    tags: [mine, raw]

datasets:
  # A seeded, stratified split: 80% of each class to train, 20% to val.
  - name: my-images-split
    recipe: sample
    description: a seeded stratified 80/20 train/val split, images copied unchanged
    inputs: {images: my-images}
    params: {seed: 0, splits: {train: 0.8, val: 0.2}}
    tags: [mine, split]

  # Both splits downscaled to 32x32 (packed arrays per split).
  - name: my-images-32x32
    recipe: downscale
    description: the split's images at 32x32, centre crop
    inputs: {train: my-images-split, val: my-images-split}
    params: {width: 32, height: 32, fit: crop}
    tags: [mine, tiny]

  # WebDataset shards of the train split (<key>.png or .jpg + <key>.cls), for a data loader.
  - name: my-images-shards
    recipe: webdataset
    description: the train split as WebDataset shards my-images-shards-NNNNNN.tar
    inputs: {images: my-images-split}
    params: {split: train}
    tags: [mine, webdataset]

  # More recipes over the same inputs (uncomment to use; README "Generic recipes"):
  # - {name: my-images-rec, recipe: recordio, inputs: {images: my-images-split},
  #    params: {split: train}}                  # MXNet RecordIO, as im2rec writes it
  # - {name: my-images-tfr, recipe: tfrecord, inputs: {images: my-images-split},
  #    params: {split: train, shards: 4}}       # tf.train.Example shards
  # - {name: my-images-folders, recipe: byclass, inputs: {images: my-images-split},
  #    params: {split: val}}                    # <class>/<file> copies (ImageFolder)
  # A classes file fixes the label order instead of the sorted class names:
  #   files: [{name: my-classes, path: ../classes.txt}]   (one class name a line)
  #   and `classes: my-classes` among a recipe's inputs.
"""


IMAGE_FOLDER_EXAMPLE = Example("a commented manifest for your own images as class folders",
                               "my-images", files={"my-images.yaml": IMAGE_FOLDER})


def config(plugins: Mapping[str, object] | None = None) -> str:
    """The project's registry.toml, naming `plugins` (module names) if any."""
    if not plugins:
        return CONFIG
    names = ", ".join(f'"{name}"' for name in plugins)
    return CONFIG.replace("# plugins = []\n", f"plugins = [{names}]\n")


def example(name: str) -> Example:
    """The registered example `name`; BadInputError listing the known ones if none."""
    from . import plugins

    if name not in plugins.names("examples"):
        raise BadInputError(f"init: unknown example {name!r} (known: "
                            f"{', '.join(plugins.names('examples'))})"
                            f"{did_you_mean(name, plugins.names('examples'))}")
    found = plugins.get("examples", name)
    origin = plugins.PLUGINS.origin("examples", name)
    if not isinstance(found, Example):
        raise PluginError(f"example {name!r} from {origin} is not a "
                          "dataset_registry.init.Example")
    for relative in found.files:  # written under manifests/ and nowhere else
        parts = relative.replace("\\", "/").split("/")
        if os.path.isabs(relative) or not relative or ".." in parts or "" in parts:
            raise PluginError(f"example {name!r} from {origin}: file {relative!r} is not a "
                              "relative path inside manifests/")
    for module in found.plugins:  # NAME.py beside registry.toml, nothing else
        if not (isinstance(module, str) and module.isidentifier()):
            raise PluginError(f"example {name!r} from {origin}: plugin {module!r} is not a "
                              "module name (a Python identifier, no dots)")
    return found


def init_project(folder: str, name: str = "image-folder") -> list[str]:
    """Write a new project into `folder` (made if missing), with the manifests of the
    example `name`; return the paths written, relative to it. BadInputError if `folder`
    is not a folder we may write, already holds a project, or no example is `name`."""
    chosen = example(name)
    folder = os.path.abspath(folder)
    modules = [f"{module}.py" for module in chosen.plugins]
    _check_target(folder, modules)
    try:
        os.makedirs(folder, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=".registry-init-", dir=folder)
    except OSError as exc:
        raise BadInputError(f"init: cannot write {folder}: {exc.strerror}") from None
    moved: list[str] = []
    try:
        manifests = os.path.join(staging, "manifests")
        os.mkdir(manifests)
        if chosen.manifests is not None:
            _copy_tree(chosen.manifests, manifests)
        for relative, text in chosen.files.items():
            os.makedirs(os.path.dirname(os.path.join(manifests, relative)), exist_ok=True)
            _write(os.path.join(manifests, relative), text)
        for module, source in chosen.plugins.items():
            _write(os.path.join(staging, f"{module}.py"),
                   source if isinstance(source, str) else source.read_text(encoding="utf-8"))
        _write(os.path.join(staging, "registry.toml"), config(chosen.plugins))
        _write(os.path.join(staging, ".gitignore"), _gitignore(folder))
        for name in ("manifests", "registry.toml", ".gitignore", *modules):
            target = os.path.join(folder, name)
            if name == "manifests" and os.path.isdir(target):
                os.rmdir(target)  # empty (checked): the staged one takes its place
            os.replace(os.path.join(staging, name), target)
            moved.append(name)
    except OSError as exc:
        for name in moved:  # nothing half-written: take back what was moved in
            with contextlib.suppress(OSError):
                path = os.path.join(folder, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        raise BadInputError(f"init: cannot write {folder}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    written = ["registry.toml", ".gitignore", *modules]
    for dirpath, dirnames, filenames in os.walk(os.path.join(folder, "manifests")):
        dirnames.sort()
        written += sorted(os.path.relpath(os.path.join(dirpath, f), folder) for f in filenames)
    return written


def _check_target(folder: str, modules: list[str]) -> None:
    """Refuse a path that is not a folder, and a folder that already holds a project
    (its registry.toml, a manifests/ with anything in it, or a file the example's plugin
    modules would be written to): init never overwrites."""
    if os.path.lexists(folder) and not os.path.isdir(folder):
        raise BadInputError(f"init: {folder} exists and is not a folder")
    if not os.path.isdir(folder):
        parent = os.path.dirname(folder)
        while not os.path.isdir(parent):  # the folders we would make, up to one that exists
            if os.path.lexists(parent):
                raise BadInputError(f"init: {parent} exists and is not a folder")
            parent = os.path.dirname(parent)
        if not os.access(parent, os.W_OK | os.X_OK):
            raise BadInputError(f"init: cannot create {folder}: {parent} is not writable")
        return
    found = []
    config = os.path.join(folder, "registry.toml")
    if os.path.lexists(config):
        found.append(config)
    manifests = os.path.join(folder, "manifests")
    if os.path.lexists(manifests) and not (os.path.isdir(manifests) and
                                           not os.path.islink(manifests) and
                                           not os.listdir(manifests)):
        found.append(manifests + ("/" if os.path.isdir(manifests) else ""))
    found += [os.path.join(folder, m) for m in modules if os.path.lexists(os.path.join(folder, m))]
    if found:
        raise BadInputError(f"init: {folder} already holds a project ({', '.join(found)}); "
                            "init never overwrites one: choose an empty or new folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise BadInputError(f"init: cannot write {folder}: permission denied")


def _gitignore(folder: str) -> str:
    """The project's .gitignore: an existing one kept, with the registry's lines added."""
    path = os.path.join(folder, ".gitignore")
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInputError(f"init: {path} cannot be read ({exc})") from None
    have = {line.strip() for line in old.splitlines()}
    missing = [line for line in IGNORED if line not in have]
    if not missing:
        return old
    head = old + ("\n" if old and not old.endswith("\n") else "")
    return head + "# written by the registry: its store, catalog and state\n" + \
        "".join(f"{line}\n" for line in missing)


def _copy_tree(source: Traversable, target: str) -> None:
    """Copy package data (a folder of a wheel install, or of this source tree) to `target`."""
    for item in sorted(source.iterdir(), key=lambda t: t.name):
        if item.name == "__pycache__" or item.name.startswith("."):
            continue
        path = os.path.join(target, item.name)
        if item.is_dir():
            os.mkdir(path)
            _copy_tree(item, path)
        else:
            with open(path, "wb") as f:
                f.write(item.read_bytes())


def _write(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
