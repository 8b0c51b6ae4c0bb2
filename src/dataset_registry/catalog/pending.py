"""A build's catalog record, begun before the artifact is published.

A build's file table is sorted into parquet after its last task (`artifact.finalize`)
and the catalog then read that table back to copy its rows (`writes.insert_artifact`):
two passes over the same rows, one after the other, while the workers stood idle (at
96,000 records: ~0.2 s of sorting and ~0.1 s of copying, 2 cores). A `PendingRecord`
copies the rows from the same sorted CSV relation the table is written from, on a thread,
while the table is written, in one transaction that `commit` completes with the marker
once the artifact is published, and `abandon` rolls back (a failed build): a reader sees
the artifact's rows and its own row together, or neither, as before.

The thread takes the writers' lock and holds the catalog for the build's last moments
(~0.1-0.3 s at 96,000 records): another writer waits as it would for the record itself.
Everything touching the catalog runs on that one thread; the builder only hands it the
marker, or nothing.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING

from .writes import insert_file_rows, insert_marker

if TYPE_CHECKING:
    from ..artifact.marker import Marker
    from . import Catalog


class _Abandoned(Exception):
    """(Rolls the transaction back: raised inside `Catalog.write()`.)"""


class PendingRecord:
    """Artifact `key`'s catalog record: its file rows copied from the SQL relations
    `files` and `skipped` (None: no skipped rows) at once, on a thread; its own row once
    `commit` gives its marker."""

    def __init__(self, catalog: Catalog, key: str, files: str, skipped: str | None) -> None:
        self.error: Exception | None = None  # what failed, if anything did
        self._read = threading.Event()  # the rows are copied (or the copy failed)
        self._ending: queue.SimpleQueue[tuple[Marker, str, str] | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._record,
                                        args=(catalog, key, files, skipped),
                                        name="registry-catalog-record")
        self._thread.start()

    def _record(self, catalog: Catalog, key: str, files: str, skipped: str | None) -> None:
        try:
            with catalog.write() as con:
                insert_file_rows(con, key, files, skipped)
                self._read.set()
                ending = self._ending.get()
                if ending is None:
                    raise _Abandoned
                insert_marker(con, *ending)
        except _Abandoned:
            pass
        except Exception as exc:  # (given to the builder by `commit`)
            self.error = exc
        finally:
            self._read.set()

    def rows_read(self) -> None:
        """Wait until the rows are copied: the files they were read from may then go."""
        self._read.wait()

    def commit(self, marker: Marker, uri: str, store: str) -> Exception | None:
        """Add the artifact's own row and commit; what failed, if anything did (nothing
        of the record is then in the catalog)."""
        self._ending.put((marker, uri, store))
        self._thread.join()
        return self.error

    def abandon(self) -> None:
        """Roll the record back (the build failed), and wait for that."""
        self._ending.put(None)
        self._thread.join()


def begin_record(catalog: Catalog | None, key: str, files: str,
                 skipped: str | None) -> PendingRecord | None:
    """A PendingRecord of `key` in `catalog`, or None where the record must be made as
    before, once published (`Catalog.record_artifact`): no catalog, one that cannot be
    written, or one whose connection a `held()` block keeps (it belongs to this thread)."""
    if catalog is None or not catalog.writable_meanwhile():
        return None
    return PendingRecord(catalog, key, files, skipped)
