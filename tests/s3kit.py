"""A real S3 HTTP endpoint for the tests: moto's server on 127.0.0.1, started here.

`ThreadedMotoServer` serves moto's standalone S3 app from a thread of the test
process; stopping and starting it again on the same port keeps the buckets
(moto's backends live in this process), which is what the fault tests need.
The credentials are fake and recognisable, so a test can grep for leaks.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

FAKE_KEY = "AKIAREGISTRYLEAKTEST7"
FAKE_SECRET = "registry-fake-secret-DoNotLeak-0123456789abcdef"

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # no metadata lookups in tests
logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class S3Endpoint:
    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._server: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> S3Endpoint:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def options(self, **extra: Any) -> dict[str, Any]:
        """Storage options for s3fs: this endpoint, the fake credentials."""
        return {"endpoint_url": self.url, "key": FAKE_KEY, "secret": FAKE_SECRET, **extra}

    def cli_options(self) -> list[str]:
        return [arg for name, value in self.options().items()
                for arg in ("--storage-option", f"{name}={value}")]

    def bucket(self) -> Bucket:
        import s3fs

        name = f"registry-{uuid.uuid4().hex[:12]}"
        s3fs.S3FileSystem(**self.options()).mkdir(name)
        return Bucket(self, name)


@dataclass
class Bucket:
    endpoint: S3Endpoint
    name: str

    @property
    def url(self) -> str:
        return f"s3://{self.name}"

    def fs(self) -> Any:
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False,
                                 **self.endpoint.options())

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(p.removeprefix(f"{self.name}/")
                      for p in self.fs().find(f"{self.name}/{prefix}".rstrip("/")))
