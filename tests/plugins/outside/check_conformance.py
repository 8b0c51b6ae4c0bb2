"""The package's own conformance run, as an outside author would certify a store and an
executor: dataset-registry's StoreSuite and ExecutorSuite over `folder://` and
`serial://`. Not installed; tests/test_outside_plugin.py runs it with pytest in the
environment the package was installed into."""

from __future__ import annotations

import pytest

from dataset_registry.executors import open_executor
from dataset_registry.stores import open_store
from dataset_registry.testing.executors import ExecutorSuite
from dataset_registry.testing.stores import StoreSuite


class TestFolderStore(StoreSuite):
    @pytest.fixture
    def store(self, tmp_path):
        return open_store(f"folder://{tmp_path / 'store'}")  # found by its URL scheme


class TestSerialExecutor(ExecutorSuite):
    @pytest.fixture(scope="class")
    def executor(self):
        yield (ex := open_executor("serial://", jobs=4))  # found by its name
        ex.close()


def test_a_folder_url_without_an_absolute_path_is_a_user_error():
    from dataset_registry.errors import BadInputError

    with pytest.raises(BadInputError, match=r"^store folder://data: expected "
                                            r"folder:///ABSOLUTE/PATH$"):
        open_store("folder://data")
