"""What the engine needs of a project: the narrow interface its functions take.

`api.Registry` is one (it opens each piece lazily and wires them); a test or another
front end may pass anything with these attributes. The engine never imports the API.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..core.remote import Remote
    from ..manifest import Manifests
    from ..stores import Store
    from .build import Resolver


class Project(Protocol):
    root: str  # the project folder (registry.toml, registry.lock)
    manifests_dir: str
    state_dir: str  # per-machine state: source locations, caches, the key cache
    lock_path: str  # registry.lock
    catalog: Catalog
    remote: Remote
    catalog_checked: bool  # the catalog was brought in step by this process already

    @property
    def manifests(self) -> Manifests: ...

    @property
    def store(self) -> Store: ...

    @property
    def caches(self) -> list[Store]: ...

    @property
    def resolver(self) -> Resolver: ...

    def key(self, name: str) -> str: ...

    def open_store(self, url: str) -> Store: ...
