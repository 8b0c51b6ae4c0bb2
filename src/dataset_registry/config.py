"""Where a registry keeps things: argument, then environment variable, then default."""

from __future__ import annotations

import glob
import os
import stat
from dataclasses import dataclass

PACKAGE_DATA = "pkg:"  # `pkg:PACKAGE/PATH`: data installed with a Python package


@dataclass(frozen=True)
class Locations:
    root: str
    manifests: str  # DATASET_REGISTRY_MANIFESTS, default ROOT/manifests
    store: str  # DATASET_REGISTRY_STORE, default ROOT/registry
    catalog: str  # DATASET_REGISTRY_CATALOG, default ROOT/catalog.duckdb
    state: str  # DATASET_REGISTRY_STATE, default ROOT/.registry-state (source settings, caches)


def locations(root: str = ".", *, manifests: str | None = None, store: str | None = None,
              catalog: str | None = None, state: str | None = None) -> Locations:
    env = os.environ.get
    root = os.path.abspath(root)
    return Locations(
        root=root,
        manifests=manifests or env("DATASET_REGISTRY_MANIFESTS") or os.path.join(root, "manifests"),
        store=store or env("DATASET_REGISTRY_STORE") or os.path.join(root, "registry"),
        catalog=catalog or env("DATASET_REGISTRY_CATALOG") or os.path.join(root, "catalog.duckdb"),
        state=state or env("DATASET_REGISTRY_STATE") or os.path.join(root, ".registry-state"),
    )


# -- what a manifest may read ------------------------------------------------------------------

# each in-tree plugin's data folder (domains/<name>/data, e.g. ImageNet's label files)
SHIPPED_DATA = tuple(sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                   "domains", "*", "data"))))
# package data that moved, old `pkg:` path -> new: a manifest still naming the old one is
# told where it went (file:line) rather than that it does not exist
MOVED_DATA = {"dataset_registry/data/imagenet": "dataset_registry.domains.imagenet/data/labels"}
MAX_MANIFEST_BYTES = 16 << 20  # a manifest is hand-written text: 16 MiB is a mistake already


def readable_roots(manifests: str) -> tuple[str, ...]:
    """Folders the files a manifest names may resolve into (after symlinks): the project
    (the folder holding the manifests folder), the manifests folder itself (it may be a
    link to elsewhere) and the package's shipped data."""
    folder = os.path.abspath(manifests)
    return tuple(dict.fromkeys(os.path.realpath(p) for p in
                               (os.path.dirname(folder), folder, *SHIPPED_DATA)))


def locate(value: str, base_dir: str) -> tuple[str, tuple[str, ...]]:
    """The absolute path a manifest's `path` means, and the extra folder it may resolve
    into. A relative path is the manifest's folder's; `pkg:PACKAGE/PATH` is inside an
    installed package (found with importlib.resources), wherever the project lives, and
    may resolve anywhere inside that package. ValueError says why a package path is not.
    """
    if not value.startswith(PACKAGE_DATA):
        return os.path.normpath(os.path.join(base_dir, value)), ()
    named = value[len(PACKAGE_DATA):]
    for old, new in MOVED_DATA.items():
        if named.rstrip("/") == old or named.startswith(old + "/"):
            raise ValueError(f"{value!r} has moved: write pkg:{new}{named[len(old):]}")
    package, _, rel = named.partition("/")
    if not package or not all(part.isidentifier() for part in package.split(".")):
        raise ValueError(f"{value!r} names no package (write pkg:PACKAGE/PATH, e.g. "
                         "pkg:dataset_registry.domains.imagenet/data/labels)")
    import importlib.resources
    import pathlib

    try:
        root = importlib.resources.files(package)
    except (ImportError, TypeError) as exc:
        raise ValueError(f"{value!r}: package {package!r} is not importable ({exc})") from None
    if not isinstance(root, pathlib.Path):  # a zip import, or a namespace package
        raise ValueError(f"{value!r}: package {package!r} is not installed as a folder of "
                         "files, so its data cannot be read in place")
    return os.path.normpath(os.path.join(root, rel)), (os.path.realpath(root),)


def outside(path: str, roots: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return not any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def input_problem(path: str, roots: tuple[str, ...]) -> str | None:
    """Why a file input (a regular file, or a folder of them) cannot be read, or None. A
    FIFO would block the reader forever and a device never ends, so neither is opened; a
    folder is walked as `keys.tree_key` walks it."""
    problem = _kind_problem(path, roots, folder_ok=True)
    if problem or not os.path.isdir(path):
        return problem
    for dirpath, _, filenames in os.walk(path):
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            problem = _kind_problem(full, roots, folder_ok=False)
            if problem:
                return f"{os.path.relpath(full, path)} in it {problem}"
    return None


def _kind_problem(path: str, roots: tuple[str, ...], *, folder_ok: bool) -> str | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "is a dangling symlink" if os.path.islink(path) else "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if outside(path, roots):
        return ("resolves outside the project (" + ", ".join(roots) + "); a manifest reads "
                "only files inside it")
    if stat.S_ISDIR(st.st_mode):
        return None if folder_ok else "is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return f"is {_KINDS.get(stat.S_IFMT(st.st_mode), 'not a regular file')}"
    if not os.access(path, os.R_OK):
        return "is not readable (permission denied)"
    return None


_KINDS = {stat.S_IFIFO: "a FIFO, not a regular file", stat.S_IFCHR: "a device, not a file",
          stat.S_IFBLK: "a device, not a file", stat.S_IFSOCK: "a socket, not a file"}


def read_text(path: str, shown: str, roots: tuple[str, ...],
              max_bytes: int = MAX_MANIFEST_BYTES) -> str:
    """The UTF-8 text of the regular file `path` inside `roots`, or a ManifestError naming
    `shown`. Opened without blocking, then checked again, so a FIFO swapped in after the
    check cannot hang the reader."""
    from .errors import ManifestError

    problem = _kind_problem(path, roots, folder_ok=False)
    if problem:
        raise ManifestError(f"{shown}: {problem}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                raise ManifestError(f"{shown}: is not a regular file")
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise ManifestError(f"{shown}: cannot be read ({exc.strerror})") from None
    if len(data) > max_bytes:
        raise ManifestError(f"{shown}: over {max_bytes >> 20} MiB; a manifest is short text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ManifestError(f"{shown}:{line}: not UTF-8 text (byte {exc.start}: "
                            f"{data[exc.start:exc.start + 1]!r})") from None
