import pytest

from dataset_registry.stores import LocalStore

from .conformance import StoreConformance


class TestLocalStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path):
        return LocalStore(str(tmp_path / "store"))
