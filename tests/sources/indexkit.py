"""What `source check` makes of an archive, as one comparable value: the pool's readings
and the serial one are compared by it (test_nestedpool, test_zippool, test_zippool_hunt);
and a zip set up to be read on a pool of 3 however small it is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dataset_registry.errors import SourceError
from dataset_registry.manifest import SourceNode
from dataset_registry.sources.index import check_source


def indexed(path: Path, cache: Path, layout: str, options: dict[str, Any] | None = None
            ) -> tuple[tuple | None, str | None]:
    """((fingerprint, files, splits, members left out and the first of them, empty folders
    and the first of them, the index's arrays), None), or (None, the refusal's words, the
    cache folder written CACHE)."""
    node = SourceNode(name="src", file="m.yaml", line=3, layout=layout, options=options or {})
    try:
        info = check_source(node, str(path), str(cache), force=True)
    except SourceError as exc:
        return None, str(exc).replace(str(cache), "CACHE")
    with np.load(info.index) as z:
        arrays = {k: z[k].tobytes() for k in z.files}
    return (info.fingerprint, info.files, info.splits, info.left_out, info.left_out_first,
            info.empty_folders, info.empty_folders_first, arrays), None


def zip_on_a_pool(folder: Path, monkeypatch: Any, data: bytes) -> Path:
    """`data` written as `folder`/source.zip, read on a pool of 3 workers in runs of a few
    members, however small it is, each worker reading its run's records itself (as many
    workers do: `zippool.RECORDS_FROM`; the `pooled` runs of test_zippool get columns)."""
    from dataset_registry.sources import zippool

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "source.zip"
    path.write_bytes(data)
    monkeypatch.setattr(zippool, "PARALLEL_BYTES", 0)
    monkeypatch.setattr(zippool, "RUNS_PER_WORKER", 3)
    monkeypatch.setattr(zippool, "default_jobs", lambda: 3)
    monkeypatch.setattr(zippool, "RECORDS_FROM", 3)
    return path
