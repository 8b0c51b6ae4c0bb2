"""The one exception tree of dataset-registry.

::

    RegistryError                  exit 1: something failed
    ├── BadInputError              exit 2: the user's input is wrong; fix it and retry
    │   ├── ManifestError          a manifest is malformed (file:line: field: what)
    │   ├── SourceError            a source is unset, missing, of the wrong layout or count
    │   │   ├── UnsafeMemberError  a tar member with an absolute path, '..' or a link
    │   │   ├── SourceChangedError a member's bytes differ from what was indexed
    │   │   └── LockMismatchError  a set source's fingerprint is not registry.lock's
    │   ├── BadImageError          a corrupt, truncated or oversized image
    │   ├── QueryRefusedError      `registry sql` was asked to write or reach outside
    │   ├── TemplateError          a job spec template is malformed or misses placeholders
    │   └── PluginError            a plugin (recipe, layout, store, executor, label scheme,
    │                              command) not registered, not importable, registered
    │                              twice, or not what its kind needs (plugins.py)
    ├── BuildError                 a recipe failed for another reason
    │   └── RecipeError            a recipe's own code raised (a bug, say, in a plugin's):
    │                              names the dataset, the recipe and the member where known
    ├── StorageError               object storage was unreachable or refused a request
    ├── SubmitError                `registry job submit` found no kubectl, or kubectl failed
    ├── CatalogBusyError           the catalog stayed locked past the retry budget, or is
    │                              not writable (the store is fine; the catalog catches up)
    ├── CatalogCorruptError        DuckDB cannot read the catalog: `registry catalog rebuild`
    ├── QueryTimeoutError          a `registry sql` query ran past its --timeout
    └── VerifyError                an artifact's files no longer match their records

Every error carries one message string, so it pickles across process and
Dask worker boundaries unchanged; one that stands for another exception (a plugin's
import, a recipe's bug) keeps that exception's traceback as text in `details`, which
`registry --debug` prints (a traceback object would not survive the trip from a worker).
"""

from __future__ import annotations

from collections.abc import Iterable


class RegistryError(Exception):
    """Base of every error this package raises on purpose."""

    exit_code = 1
    details = ""  # the traceback of the exception this one stands for, if any (--debug)

    def __init__(self, message: str, details: str = "") -> None:
        super().__init__(message)
        self.message = message
        if details:
            self.details = details

    def __str__(self) -> str:
        return self.message


class BadInputError(RegistryError):
    """The input (manifest, source, image, query) is wrong: exit code 2."""

    exit_code = 2


class ManifestError(BadInputError):
    """A manifest file is malformed; the message names file, line and field."""


class SourceError(BadInputError):
    """A source is not set, missing, or does not have the layout it declares."""


class UnsafeMemberError(SourceError):
    """A tar member that could escape its folder (absolute, '..', link, device)."""


class SourceChangedError(SourceError):
    """A member read for a build no longer hashes to what its source's index says: the
    source was edited in place since it was indexed (`registry source check NAME`)."""


class LockMismatchError(SourceError):
    """A source set on this machine whose fingerprint differs from the one registry.lock
    records: another copy than the project's keys were computed from (`--update-lock`
    locks this one)."""


class BadImageError(BadInputError):
    """An image that cannot be decoded, or is larger than the decoder allows."""


class QueryRefusedError(BadInputError):
    """A catalog query that tried to write, or to read files or the network."""


class TemplateError(BadInputError):
    """A job spec template that is not YAML, uses unknown placeholders or misses needed ones."""


class PluginError(BadInputError):
    """A plugin name that is not registered, a target that does not import or is not
    what its kind needs (e.g. a command without `run`), or a clash."""


class StorageError(RegistryError):
    """Object storage was unreachable or refused a request; the message holds no secret."""


class SubmitError(RegistryError):
    """A job spec could not be handed to the cluster (no kubectl, or kubectl failed)."""


class BuildError(RegistryError):
    """A build failed for a reason other than bad input."""


class RecipeError(BuildError):
    """A recipe's `plan`, `run`, `follow` or `finish` raised something that is not a
    RegistryError (a bug in it, or in a plugin it calls): one line naming the dataset,
    the recipe and, where known, the member it was processing; the traceback is in
    `details`. A RegistryError a recipe raises on purpose keeps its own message."""


class CatalogBusyError(RegistryError):
    """The catalog stayed locked by another process past the retry budget, or cannot be
    written; the store is the truth, and the next writing command indexes what is missing."""


class CatalogCorruptError(RegistryError):
    """The catalog file is not a readable DuckDB database; `registry catalog rebuild`
    moves it aside and rebuilds it from the store."""


class QueryTimeoutError(RegistryError):
    """A catalog query ran longer than its timeout and was stopped."""


class VerifyError(RegistryError):
    """Files of a built artifact no longer match their recorded hashes."""


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """What to add to "no X named NAME": the known names closest to `name` by edit
    similarity (difflib's ratio, at most 3, closest first), as " (did you mean: a, b?)",
    or "" when none is close. A typo (`my-imags`, `my-images-splt`) finds what was meant
    where a substring match found nothing or the wrong name."""
    import difflib

    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    return f" (did you mean: {', '.join(close)}?)" if close else ""
