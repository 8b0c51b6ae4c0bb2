import pytest

from dataset_registry.executors import open_executor
from dataset_registry.testing.executors import ExecutorSuite

from ..conftest import dask_address
from .imagenet import ImageNetReference


class TestDask(ExecutorSuite, ImageNetReference):
    @pytest.fixture(scope="class")
    @classmethod
    def executor(cls, dask_cluster):
        # through the public spelling: dask://HOST:PORT of a running scheduler
        executor = open_executor(dask_address(dask_cluster), None)
        yield executor
        executor.close()


def test_a_killed_worker_is_replaced_and_the_build_completes(synth_small, reference_digests,
                                                             tmp_path):
    """The scheduler kills (SIGKILL) the worker given the first task; the task runs again
    elsewhere and the bytes are the reference's."""
    import os
    import signal

    import distributed
    from distributed.diagnostics.plugin import SchedulerPlugin

    from ..buildkit import every_recipe

    class KillFirstWorker(SchedulerPlugin):
        def __init__(self, scheduler):
            self.scheduler, self.killed = scheduler, []

        def transition(self, key, start, finish, *args, **kwargs):
            if finish == "processing" and not self.killed:
                worker = self.scheduler.tasks[key].processing_on
                self.killed.append(worker.address)
                os.kill(worker.pid, signal.SIGKILL)

    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:
        plugin = KillFirstWorker(cluster.scheduler)
        cluster.scheduler.add_plugin(plugin)
        reg = every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
        ds = reg.resolve("tiny", executor=dask_address(cluster))
        assert plugin.killed, "no worker was killed: the test did not test anything"
    assert ds.digest == reference_digests["tiny"]
    assert reg.verify(["tiny"]) == {"tiny": []}


def test_executor_specs_are_checked(tmp_path):
    from dataset_registry import BadInputError, BuildError

    with pytest.raises(BadInputError, match="expected 'local', 'dask://HOST:PORT'"):
        open_executor("spark://x", None)
    with pytest.raises(BadInputError):
        open_executor("dask://", None)
    from dataset_registry.executors.dask import DaskExecutor

    assert isinstance(open_executor("dask://127.0.0.1:9", None), DaskExecutor)
    unreachable = DaskExecutor("127.0.0.1:9", connect_timeout="1s")
    with pytest.raises(BuildError, match=r"cannot reach the Dask scheduler at 127\.0\.0\.1:9"):
        unreachable.prepare()


def test_without_distributed_the_error_names_the_install_command(monkeypatch):
    import sys

    from dataset_registry import BadInputError

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(BadInputError, match=r"pip install 'dataset-registry\[dask\]'"):
        open_executor("dask://local", 2).prepare()


def test_the_local_cluster_shortcut(synth_small, reference_digests, tmp_path):
    from ..buildkit import every_recipe

    reg = every_recipe(tmp_path, synth_small["imagenet-train"], synth_small["imagenet-val"])
    ds = reg.resolve("wds", executor="dask://local", jobs=2)
    assert ds.digest == reference_digests["wds"]
    assert ds.marker.built["executor"] == "DaskExecutor" and ds.marker.built["jobs"] == 2


def test_tasks_that_do_not_pickle_are_one_line_on_dask(dask_cluster, tmp_path):
    """What pickle said, not Dask's "Could not serialize" around it with the repr of every
    task; nothing is built."""
    from dataset_registry import RecipeError
    from dataset_registry.testing.echo import use_faulty
    from dataset_registry.testing.sources import write_image_folder

    from .test_local import unpicklable_project

    with use_faulty():
        reg = unpicklable_project(tmp_path, write_image_folder(tmp_path / "data"))
        with pytest.raises(RecipeError) as info:
            reg.resolve("locked", executor=dask_address(dask_cluster))
        assert reg.status("locked") == "missing" and list(reg.store.committed()) == []
    assert str(info.value) == (
        f"{reg.manifests.get('locked').where}: locked: recipe 'faulty': its tasks could not "
        "be run: TypeError: cannot pickle '_thread.lock' object (a task, the params and the "
        "result must pickle to reach a worker process)")
