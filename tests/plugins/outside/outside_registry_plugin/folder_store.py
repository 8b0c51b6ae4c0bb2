"""A store from outside dataset-registry: `folder:///ABSOLUTE/PATH`, a local folder named
by a URL scheme of this package's own (registered by its entry point). It keeps the
local store's commit protocol (staging, marker last, one rename) and records the URL
the user gave."""

from __future__ import annotations

from dataset_registry.core.remote import Remote
from dataset_registry.errors import BadInputError
from dataset_registry.stores import LocalStore


class FolderStore(LocalStore):
    def __init__(self, url: str, remote: Remote, cache_dir: str) -> None:
        path = url.split("://", 1)[1]
        if not path.startswith("/"):
            raise BadInputError(f"store {url}: expected folder:///ABSOLUTE/PATH")
        super().__init__(path)
        self.url = url.rstrip("/")
