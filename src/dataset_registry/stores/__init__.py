"""Stores: `open_store(url)` picks the backend; `base` defines what every backend does."""

from __future__ import annotations

import os

from ..remote import Remote, is_remote
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
    """A local folder (a path or file://) or object storage (s3://bucket/prefix).

    `cache_dir` (for object storage) holds staging, local copies and machine-local locks.
    """
    if not is_remote(url):
        return LocalStore(url.removeprefix("file://"))
    from ..errors import BadInputError
    from ..remote import check_url

    check_url(url)
    if not url.startswith("s3://"):
        raise BadInputError(f"store {url.split('://', 1)[0]}://: only local folders and s3:// "
                            "stores are supported")
    if len(url.removeprefix("s3://").strip("/")) == 0:
        raise BadInputError("store s3://: name a bucket (s3://bucket/prefix)")
    from .s3 import S3Store

    return S3Store(url, remote or Remote(), cache_dir or os.path.join(".registry-state", "s3"))


__all__ = ["FILES", "MARKER", "RESERVED", "SCRATCH", "SKIPPED", "Drop", "FolderDrop",
           "LocalStore", "ScratchDrop", "Staging", "Store", "artifact_path", "open_store"]
