import pytest

from dataset_registry.core.remote import Remote
from dataset_registry.stores import open_store
from dataset_registry.testing.stores import StoreSuite


class TestS3Store(StoreSuite):
    @pytest.fixture
    def store(self, s3, tmp_path):
        store = open_store(f"{s3.bucket().url}/some/prefix", Remote(s3.options()),
                           str(tmp_path / "cache"))
        store.grace_seconds = 0  # the crash test's leftovers are seconds old
        return store
