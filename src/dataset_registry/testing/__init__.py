"""Conformance kits for backends written outside this package, as fsspec ships its
abstract tests: an outside store, executor, recipe or layout certifies itself by
subclassing a suite and running pytest, with no ImageNet and no network.

- `testing.stores.StoreSuite`: the commit protocol and the record checks;
- `testing.executors.ExecutorSuite`: bytes identical to an inline build, failures, arrival;
- `testing.recipes.RecipeSuite`: worker-count independence, keys, output paths, on_error;
- `testing.layouts.LayoutSuite`: folder = tar, unique names, the ignore rule, moves;
- `testing.sources`: a deterministic synthetic image source (class folders, or a tar);
- `testing.echo`: the `echo` recipe (byte-exact copies), registered by `with use_echo():`,
  and `faulty`, echo failing on request (`with use_faulty():`);
- `testing.registration.registered`: any plugin registered for one block only.

This package imports no pytest; the suite modules do (they are test code).
"""

from __future__ import annotations

from .echo import Echo, use_echo
from .sources import (
                      BROKEN_IMAGE,
                      open_project,
                      synthetic_images,
                      write_image_folder,
                      write_image_tar,
)

__all__ = ["BROKEN_IMAGE", "Echo", "open_project", "synthetic_images", "use_echo",
           "write_image_folder", "write_image_tar"]
