"""protocols.py: each protocol's fs.info() fields read into one version token and one
write time, whatever type the client library reports them in."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from dataset_registry.core.protocols import GENERIC, PROTOCOLS, protocol

WHEN = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)


@pytest.mark.parametrize(("url", "info", "version"), [
    # s3fs: the ETag (quoted, as S3 sends it), LastModified a datetime
    ("s3://b/k", {"size": 3, "ETag": '"abc"', "LastModified": WHEN}, '"abc"'),
    # gcsfs: the object's JSON (md5Hash, generation, updated as text) plus mtime
    ("gs://b/k", {"size": 3, "md5Hash": "q1w2==", "generation": "17",
                  "updated": "2024-05-06T07:08:09.000Z"}, "q1w2=="),
    ("gcs://b/k", {"size": 3, "generation": "17", "mtime": WHEN}, "17"),  # composite: no md5
    # adlfs: etag, last_modified a datetime
    ("az://c/k", {"size": 3, "etag": "0x8DC", "last_modified": WHEN}, "0x8DC"),
    ("abfs://c/k", {"size": 3, "etag": "0x8DC", "last_modified": WHEN}, "0x8DC"),
    # fsspec's memory filesystem: only a creation time (datetime from info, float from find)
    ("memory://b/k", {"size": 3, "created": WHEN}, repr(WHEN.timestamp())),
    ("memory://b/k", {"size": 3, "created": WHEN.timestamp()}, repr(WHEN.timestamp())),
])
def test_each_protocol_reads_its_own_version_and_write_time(url, info, version):
    proto = protocol(url)
    assert proto.version(info) == version
    assert proto.mtime(info) == WHEN.timestamp()


def test_a_field_of_another_protocol_is_never_read():
    """Today's bug class: reading S3's ETag on every protocol gave "" on GCS and Azure,
    so a rewritten object of the same size kept its old signature."""
    assert protocol("gs://b/k").version({"ETag": "x", "size": 1}) == ""
    assert protocol("s3://b/k").version({"etag": "x", "md5Hash": "y", "size": 1}) == ""


def test_without_a_version_field_the_write_time_stands_in_and_unknown_is_empty():
    assert protocol("s3://b/k").version({"LastModified": WHEN}) == repr(WHEN.timestamp())
    assert protocol("s3://b/k").version({}) == ""
    assert protocol("s3://b/k").mtime({"LastModified": "not a time"}) is None
    assert protocol("myproto://x") is GENERIC and GENERIC.version({"ETag": "x"}) == ""


def test_only_memory_is_private_to_its_process_and_bucketless():
    assert {n for n, p in PROTOCOLS.items() if not p.shared} == {"memory"}
    assert {n for n, p in PROTOCOLS.items() if not p.buckets} == {"memory"}
