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

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import BadInputError, StorageError
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

            options = typed_options(fsspec.get_filesystem_class(scheme), scheme, self.options)
            fs = fsspec.filesystem(scheme, **options)
            # s3fs builds its client lazily; built now, an unknown option or a malformed
            # endpoint is refused here, naming it, not as a traceback at the first request
            if callable(getattr(fs, "connect", None)):
                fs.connect()
            return fs
        except ImportError as exc:
            raise protocol(url).missing(scheme, exc) from None
        except BadInputError as exc:  # typed_options' refusal: a value may be a secret
            raise BadInputError(self.redact(exc.message)) from None
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


def typed_options(cls: type, scheme: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` as filesystem class `cls` takes them: text (from `--storage-option` or
    the environment) made what its parameter takes (`_from_text`); other values as given
    (Python callers pass real ones). `asynchronous=true` is refused: the registry calls
    the filesystem's blocking methods."""
    import inspect

    if options.get("asynchronous") is True:
        raise BadInputError(f"storage option asynchronous=true for {scheme}://: the "
                            "registry calls the filesystem synchronously; leave it out")
    defaults: dict[str, Any] = {}
    with contextlib.suppress(TypeError, ValueError):  # no signature: nothing to go by
        defaults = {n: p.default for n, p in inspect.signature(cls.__init__).parameters.items()}
    types = protocol(f"{scheme}://").option_types
    typed = {}
    for name, value in options.items():
        if not isinstance(value, str):
            typed[name] = value
            continue
        default = defaults.get(name)
        if name in types:
            wanted = types[name]
        elif name.endswith("_kwargs") or isinstance(default, dict):
            wanted = dict
        elif isinstance(default, bool | int | float):
            wanted = type(default)
        else:
            wanted = str
        typed[name] = _from_text(scheme, name, value, wanted)
    return typed


def _from_text(scheme: str, name: str, value: str, wanted: type | None) -> Any:
    """Text as a parameter of type `wanted` takes it (None: an object no text gives): a
    JSON object for a dict (s3fs's `config_kwargs`, ...), a number, `true`/`false` (made
    booleans by `parse_options` already). Anything else is refused, naming the option:
    the library would fail later, deep inside (s3fs calls `.copy()` on a `*_kwargs`).
    The refusal quotes the value, except a JSON object's (credentials may be in one:
    s3fs's client_kwargs may hold aws_secret_access_key), masked by the caller's redact."""
    import json

    if wanted is str:
        return value
    if wanted is dict:
        with contextlib.suppress(ValueError):
            parsed = json.loads(value)
            if isinstance(parsed, dict):
                return parsed
        raise BadInputError(f"storage option {name} for {scheme}://: expected a JSON object, "
                            f'e.g. {name}={{"name": "value"}}')
    if wanted in (int, float):
        with contextlib.suppress(ValueError):
            return wanted(value)
        expected = "a whole number" if wanted is int else "a number"
    elif wanted is bool:
        expected = "true or false"
    else:
        expected = "a Python object, which only storage_options={...} in Python can give"
    raise BadInputError(f"storage option {name}={value!r} for {scheme}://: expected "
                        f"{expected}")


def check_url(url: str) -> None:
    """Refuse credentials inside a URL (they would end up in the catalog and in logs)."""
    if re.match(r"^[a-z0-9+.-]+://[^/]*@", url, re.IGNORECASE):
        scheme = url.split("://", 1)[0]
        raise BadInputError(f"a {scheme}:// URL must not hold credentials (user:secret@); use "
                            "the AWS environment or --storage-option key=... secret=...")


__all__ = ["Remote", "check_url", "env_options", "is_remote", "parse_options",
           "transport_errors"]
