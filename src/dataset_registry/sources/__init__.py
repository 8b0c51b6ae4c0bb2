"""Sources: the user's raw data read in place. `index` fingerprints a source through its
layout (`layouts/`) into split-agnostic member sets; `members` is those members as
recipes see them (a name, where its bytes lie, read and checked against their xxh3);
`classes` turns class names into labels; `location` reads a local path or an
object-storage URL through one interface; `tarindex`, `zipindex` (with `zipcheck`) index
archives without extracting them.

`dataset_registry.sources` was one module before it was a package: its names are still
found here (imported on first use) for code written against it.
"""

from .._moved import forwarding

__getattr__ = forwarding(__name__, "index")
