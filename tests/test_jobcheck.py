"""The schema check catches what a lenient deserializer would drop or coerce."""

import copy

from dataset_registry.jobcheck import check_spec

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
