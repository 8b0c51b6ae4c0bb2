import pytest

from dataset_registry.executors import LocalExecutor

from .conformance import ExecutorConformance


class TestLocalPool(ExecutorConformance):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        executor = LocalExecutor(2)
        yield executor
        executor.close()
