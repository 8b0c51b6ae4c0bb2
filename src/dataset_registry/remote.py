"""Object storage through fsspec: URLs, storage options, and secrets kept out of text.

Credentials come from each client library's standard environment (botocore reads
AWS_ACCESS_KEY_ID, AWS_ENDPOINT_URL, ...) or from `--storage-option key=value`.
What differs per protocol (the package to install, which options are secrets,
which errors are transport failures) is in `protocols.py`.
Options travel to workers inside task arguments only; every message this
package builds from an object-storage failure goes through `redact` first, and
no option is ever written to a marker, the catalog or a log.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .errors import BadInputError, StorageError
from .protocols import protocol, secret_env, secret_options, transport_errors

SECRET_OPTIONS = secret_options()
SECRET_ENV = secret_env()


def is_remote(location: str) -> bool:
    return "://" in location and not location.startswith("file://")


def parse_options(pairs: Iterable[str]) -> dict[str, Any]:
    """`key=value` strings from the command line; 'true'/'false' become booleans."""
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise BadInputError(f"--storage-option {name or pair!r}: expected NAME=VALUE")
        if not name.isidentifier():
            raise BadInputError(f"--storage-option {pair!r}: {name!r} is not an option name "
                                "(expected NAME=VALUE, e.g. endpoint_url=http://host:9000)")
        options[name] = {"true": True, "false": False}.get(value.lower(), value)
    return options


def env_options() -> dict[str, Any]:
    """Options from DATASET_REGISTRY_STORAGE_OPTIONS ('k=v,k=v'), the config's counterpart."""
    raw = os.environ.get("DATASET_REGISTRY_STORAGE_OPTIONS", "")
    return parse_options(p for p in raw.split(",") if p)


@dataclass(frozen=True)
class Remote:
    """How to reach object storage: the options, never shown (repr hides them)."""

    options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def filesystem(self, url: str) -> Any:
        scheme = url.split("://", 1)[0]
        check_url(url)
        try:
            import fsspec

            fs = fsspec.filesystem(scheme, **dict(self.options))
            # s3fs builds its client lazily; built now, an unknown option or a malformed
            # endpoint is refused here, naming it, not as a traceback at the first request
            if callable(getattr(fs, "connect", None)):
                fs.connect()
            return fs
        except ImportError as exc:
            raise protocol(url).missing(scheme, exc) from None
        except (TypeError, ValueError) as exc:
            raise BadInputError(self.redact(f"storage options for {scheme}://: {exc}")) from None

    def redact(self, text: str) -> str:
        secrets = [str(v) for k, v in self.options.items() if k in SECRET_OPTIONS and v]
        secrets += [os.environ[k] for k in SECRET_ENV if os.environ.get(k)]
        for secret in sorted(set(secrets), key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def call(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """`fn(*args, **kwargs)`, a transport failure turned into a redacted StorageError
        naming `what` (FileNotFoundError passes through: callers decide what it means)."""
        try:
            return fn(*args, **kwargs)
        except FileNotFoundError:
            raise
        except transport_errors() as exc:
            raise self.error(what, exc) from None

    def error(self, what: str, exc: BaseException) -> StorageError:
        """A StorageError for a failed request, with any secret masked."""
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return StorageError(self.redact(f"{what}: {detail}"))


def check_url(url: str) -> None:
    """Refuse credentials inside a URL (they would end up in the catalog and in logs)."""
    if re.match(r"^[a-z0-9+.-]+://[^/]*@", url, re.IGNORECASE):
        scheme = url.split("://", 1)[0]
        raise BadInputError(f"a {scheme}:// URL must not hold credentials (user:secret@); use "
                            "the AWS environment or --storage-option key=... secret=...")


__all__ = ["Remote", "check_url", "env_options", "is_remote", "parse_options",
           "transport_errors"]
