import pytest

from dataset_registry.executors import LocalExecutor
from dataset_registry.testing.executors import ExecutorSuite

from .imagenet import ImageNetReference


class TestLocalPool(ExecutorSuite, ImageNetReference):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls):
        executor = LocalExecutor(2)
        yield executor
        executor.close()
