"""What differs between object-storage protocols, in one place.

The object store (`stores/object.py`), remote sources (`sources/location.py`) and the
filesystem factory (`remote.py`) are written once over fsspec; everything a
protocol does its own way is a row of `PROTOCOLS`:

- which `fs.info()` fields name *this version* of an object (a source's stat
  signature: re-index when it changes) and when it was last written (gc's grace
  period): S3 `ETag`/`LastModified`, GCS `md5Hash`/`generation`/`updated`, Azure
  `etag`/`last_modified`, fsspec's memory filesystem only `created`;
- which package provides the fsspec implementation (named in the error when absent);
- which storage options and environment variables hold secrets (masked in messages);
- which exceptions mean "the endpoint or network failed";
- what the options the filesystem's signature leaves untyped (default None) take, so
  text from `--storage-option` is converted or refused naming the option (remote.py);
- whether the URL's first segment is a bucket that must exist, and whether every
  worker process reaches the same objects (memory: only the process that wrote them).

Shared by all: objects have no rename, so an artifact is published by writing
its files to their final names and the marker last (see stores/object.py).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ..errors import BadInputError


@dataclass(frozen=True)
class Protocol:
    name: str
    package: str  # the pip requirement providing the fsspec implementation; "" = fsspec
    version_fields: tuple[str, ...] = ()  # fs.info() fields naming this version, first wins
    mtime_fields: tuple[str, ...] = ()  # fs.info() fields holding the last write time
    secret_options: frozenset[str] = frozenset()
    secret_env: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()  # "module:Class" transport failures, where installed
    buckets: bool = True  # `proto://BUCKET/prefix`: the bucket must exist before a build
    shared: bool = True  # every worker process sees the same objects
    # options whose default is None: the type text becomes (int, ...), or None for an
    # object no NAME=VALUE text can give (a session, an event loop)
    option_types: Mapping[str, type | None] = field(default_factory=dict, compare=False)

    def mtime(self, info: dict[str, Any]) -> float | None:
        """When the object of `info` was last written (seconds since the epoch), if known:
        each library reports it its own way (datetime, epoch float, ISO-8601 text)."""
        for name in self.mtime_fields:
            value = info.get(name)
            if isinstance(value, datetime):
                return value.timestamp()
            if isinstance(value, int | float) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, str) and value:
                try:
                    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
                except ValueError:
                    continue
        return None

    def version(self, info: dict[str, Any]) -> str:
        """A token that changes whenever the object of `info` is rewritten: its version
        field (ETag, md5Hash, ...), else its write time, else "" (size alone decides)."""
        for name in self.version_fields:
            value = info.get(name)
            if value not in (None, ""):
                return str(value)
        stamp = self.mtime(info)
        return "" if stamp is None else repr(stamp)

    def missing(self, scheme: str, exc: ImportError) -> BadInputError:
        """The error for a `scheme://` filesystem whose package is not installed."""
        if not self.package:
            return BadInputError(f"{scheme}:// needs a package that is not installed ({exc})")
        return BadInputError(f"{scheme}:// needs {self.package.split('>')[0]}, which is not "
                             f"installed: pip install '{self.package}'")


_AWS = Protocol(
    "s3", "s3fs>=2024.6", ("ETag",), ("LastModified",),
    frozenset({"key", "secret", "token", "aws_access_key_id", "aws_secret_access_key",
               "aws_session_token"}),
    ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"),
    ("botocore.exceptions:BotoCoreError", "botocore.exceptions:ClientError",
     "aiohttp:ClientError"),
    option_types={"default_block_size": int, "session": None, "loop": None})
_GCS = Protocol(
    "gs", "gcsfs", ("md5Hash", "generation"), ("mtime", "updated"),
    frozenset({"token", "secret"}), (),
    ("aiohttp:ClientError", "google.auth.exceptions:GoogleAuthError"))
_AZURE = Protocol(
    "az", "adlfs", ("etag",), ("last_modified",),
    frozenset({"account_key", "sas_token", "connection_string", "client_secret",
               "credential", "password"}),
    ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING",
     "AZURE_CLIENT_SECRET"),
    ("azure.core.exceptions:AzureError",))
_MEMORY = Protocol("memory", "", (), ("created",), buckets=False, shared=False)

PROTOCOLS: dict[str, Protocol] = {"s3": _AWS, "s3a": _AWS, "gs": _GCS, "gcs": _GCS,
                                  "az": _AZURE, "abfs": _AZURE, "memory": _MEMORY}
"""URL scheme -> its protocol (aliases share one row)."""

GENERIC = Protocol("fsspec", "")
"""Any other fsspec protocol a plugin store or source uses: no version field, size only."""


def protocol(url: str) -> Protocol:
    """The row for `url`'s scheme (GENERIC for one this table does not know)."""
    return PROTOCOLS.get(url.split("://", 1)[0].lower(), GENERIC)


def secret_options() -> frozenset[str]:
    return frozenset({"password"}).union(*(p.secret_options for p in PROTOCOLS.values()))


def secret_env() -> tuple[str, ...]:
    return tuple(dict.fromkeys(e for p in PROTOCOLS.values() for e in p.secret_env))


@functools.cache
def transport_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean "the endpoint or network failed", as opposed to a programming
    error: OSError and TimeoutError, and each installed client library's own."""
    found: list[type[BaseException]] = [OSError, TimeoutError]
    for target in dict.fromkeys(t for p in PROTOCOLS.values() for t in p.errors):
        module, _, name = target.partition(":")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue  # that client is not installed: its errors cannot occur
    return tuple(found)
