"""Stores: `open_store(url)` picks the backend; `base` defines what every backend does.

`ObjectStore` (stores/object.py) is reached through `open_store` and the plugin table
only, not imported here: importing the stores must not import fsspec and s3fs."""

from __future__ import annotations

import os

from ..core.remote import Remote, is_remote
from .base import (
    FILES,
    MARKER,
    RESERVED,
    SCRATCH,
    SKIPPED,
    Drop,
    FolderDrop,
    ScratchDrop,
    Staging,
    Store,
    artifact_path,
)
from .local import LocalStore


def open_store(url: str, remote: Remote | None = None, cache_dir: str | None = None) -> Store:
    """The store at `url`: a local folder (a path or file://), or the backend registered
    for its URL scheme (plugins.py: the object store for `s3`, `gs`, `az`, `abfs` and
    `memory` built in; `dataset_registry.stores` entry points).

    `cache_dir` (for object storage) holds staging, local copies and machine-local locks.
    """
    if not is_remote(url):
        return LocalStore(url.removeprefix("file://"))
    from .. import plugins
    from ..core.remote import check_url
    from ..errors import BadInputError

    check_url(url)
    scheme = url.split("://", 1)[0]
    if scheme not in plugins.names("stores"):
        raise BadInputError(f"store {scheme}://: no store is registered for this scheme "
                            f"(registered: {', '.join(plugins.names('stores'))})"
                            f"{plugins.missing_note()}")
    if len(url.split("://", 1)[1].strip("/")) == 0:
        raise BadInputError(f"store {scheme}://: name a bucket ({scheme}://bucket/prefix)")
    backend = plugins.get("stores", scheme)
    return backend(url, remote or Remote(), cache_dir or os.path.join(".registry-state", scheme))


__all__ = ["FILES", "MARKER", "RESERVED", "SCRATCH", "SKIPPED", "Drop", "FolderDrop",
           "LocalStore", "ScratchDrop", "Staging", "Store", "artifact_path", "open_store"]
