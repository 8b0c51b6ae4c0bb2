"""The schema check catches what a lenient deserializer would drop or coerce."""

import copy
from pathlib import Path

import yaml

from dataset_registry.jobs.check import TRAINJOB_SCHEMA, check_spec
from dataset_registry.jobs.crdcheck import load_schema

WORKER = {"spec": {"containers": [{"name": "w", "image": "x", "resources": {
    "limits": {"nvidia.com/gpu": 1, "cpu": 8, "memory": "32Gi"}}}]}}
MPIJOB = {"apiVersion": "kubeflow.org/v2beta1", "kind": "MPIJob", "metadata": {"name": "j"},
          "spec": {"slotsPerWorker": 1, "runPolicy": {"cleanPodPolicy": "Running"},
                   "mpiReplicaSpecs": {
                       "Launcher": {"replicas": 1, "template": copy.deepcopy(WORKER)},
                       "Worker": {"replicas": 4, "template": copy.deepcopy(WORKER)}}}}


def test_a_good_mpijob_passes():
    assert check_spec(MPIJOB) == []


def test_unknown_fields_wrong_types_missing_required_and_bad_quantities_fail():
    bad = copy.deepcopy(MPIJOB)
    bad["spec"]["slotsPerWorker"] = "1"
    bad["spec"]["mpiReplicaSpecs"]["Worker"]["replica"] = 4
    worker = bad["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]["containers"][0]
    del worker["name"]
    worker["resources"]["limits"]["memory"] = "32 gigs"
    del bad["spec"]["mpiReplicaSpecs"]["Launcher"]
    problems = check_spec(bad)
    assert "spec.slotsPerWorker: expected int, got str '1'" in problems
    assert "spec.mpiReplicaSpecs.Worker.replica: unknown field of KubeflowOrgV1ReplicaSpec" \
        in problems
    assert any("containers[0]: V1Container: Invalid value for `name`, must not be `None`" in p
               for p in problems)
    assert any("limits.memory: '32 gigs' is not a resource quantity" in p for p in problems)
    assert "spec.mpiReplicaSpecs.Launcher: missing" in problems


def test_t9k_mpijob_needs_cmd_and_known_fields():
    job = {"apiVersion": "batch.tensorstack.dev/v1beta1", "kind": "MPIJob",
           "metadata": {"name": "j"},
           "spec": {"worker": {"replicas": 4, "processesPerWorker": 1,
                               "template": copy.deepcopy(WORKER)}, "mpiHome": "/usr"}}
    assert check_spec(job) == ["spec.worker.cmd: missing (required)"]
    job["spec"]["worker"]["cmd"] = ["python", "train.py"]
    job["spec"]["workers"] = 2
    assert check_spec(job) == ["spec.workers: unknown field of T9kMPIJobSpec"]


def test_an_unknown_kind_is_reported():
    assert check_spec({"apiVersion": "x/v1", "kind": "Thing", "metadata": {"name": "a"}}) == \
        ["apiVersion 'x/v1' kind 'Thing': no schema to check it against"]


SEED = (Path(__file__).parents[1] / "fixtures" / "jobs"
        / "t9k-mlperf-image-classification-mpijob.yaml")


def test_the_seed_t9k_mpijob_passes_and_a_wrongly_typed_field_is_named():
    seed = yaml.safe_load(SEED.read_text())
    assert check_spec(seed) == []
    bad = copy.deepcopy(seed)
    bad["spec"]["runPolicy"]["cleanUpWorkers"] = "all"
    bad["spec"]["worker"]["processRecovery"]["limit"] = "0"
    assert check_spec(bad) == ["spec.runPolicy.cleanUpWorkers: expected bool, got str 'all'",
                               "spec.worker.processRecovery.limit: expected int, got str '0'"]


def test_render_check_refuses_a_wrongly_typed_template_field_with_exit_2(tmp_path,
                                                                         synth_small):
    from ..conftest import copy_manifests, run_cli

    manifests = copy_manifests(tmp_path)
    template = manifests / "jobs" / "mlperf-resnet50.t9k.yaml.tmpl"
    template.write_text(template.read_text().replace("cleanUpWorkers: true",
                                                     "cleanUpWorkers: all"))
    env = {"DATASET_REGISTRY_STATE": str(tmp_path / "s")}
    for split in ("train", "val"):
        run_cli("source", "set", f"imagenet2012-{split}", synth_small[f"imagenet-{split}"],
                cwd=tmp_path, env=env)
    proc = run_cli("job", "render", "mlperf-resnet50", "--flavor", "t9k", "--check",
                   "--cluster-store", "/pvc/registry", cwd=tmp_path, env=env)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert "spec.runPolicy.cleanUpWorkers: expected bool, got str 'all'" in proc.stderr
    runs = run_cli("sql", "SELECT count(*) AS n FROM runs", cwd=tmp_path, env=env)
    assert runs.returncode == 0 and runs.stdout.split()[-1] == "0"  # no run recorded


def test_a_trainjob_is_checked_against_the_trainer_crd_schema():
    job = {"apiVersion": "trainer.kubeflow.org/v1alpha1", "kind": "TrainJob",
           "metadata": {"name": "j"},
           "spec": {"runtimeRef": {"name": "mpi"},
                    "trainer": {"image": "x", "numNodes": 4, "command": ["python"],
                                "resourcesPerNode": {"limits": {"cpu": 8, "memory": "40Gi"}}}}}
    assert check_spec(job) == []
    job["spec"]["trainer"]["numNodes"] = "4"
    job["spec"]["trainer"]["numNode"] = 4
    job["spec"]["trainer"]["resourcesPerNode"]["limits"]["memory"] = "40 gigs"
    del job["spec"]["runtimeRef"]
    assert check_spec(job) == [
        "spec.runtimeRef: missing (required)",
        "spec.trainer.numNodes: expected integer, got str '4'",
        "spec.trainer.resourcesPerNode.limits.memory: '40 gigs' does not match "
        + load_schema(TRAINJOB_SCHEMA)["properties"]["spec"]["properties"]["trainer"][
            "properties"]["resourcesPerNode"]["properties"]["limits"]["additionalProperties"][
            "pattern"],
        "spec.trainer.numNode: unknown field"]
