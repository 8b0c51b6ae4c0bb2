"""Schema checks for rendered job specs, against the generated Kubernetes models.

Kubeflow's `kubeflow-training` SDK and the `kubernetes` client ship OpenAPI-
generated model classes (field names, types, required fields). We walk a
rendered spec through them: an unknown field, a wrong type or a missing
required field is a problem, where a lenient deserializer would drop or
coerce it. Kubeflow `kubeflow.org/v2beta1` MPIJobs are checked with the SDK's
MPIJob spec model (the SDK models the v1 API: the replica specs, run policy
and pod templates are the same in v2beta1), plus the fields only v2beta1 has.
TensorStack's `batch.tensorstack.dev/v1beta1` MPIJob has no public SDK: its
fields are the seed's (t9k/examples' mlperf MPIJob, which runs on it) with the types its API
reference gives (`runPolicy.cleanUpWorkers` a boolean, `processRecovery` an enable flag and a
limit), and its pod template goes through the same Kubernetes models. Kubeflow Trainer's
`trainer.kubeflow.org/v1alpha1` TrainJob is checked against its published CRD schema
(crdcheck, jobs/schemas/). `batch/v1` Jobs and `v1` Pods use the Kubernetes models.

Optional: `pip install -e '.[k8s]'` from a checkout (the `k8s` extra).
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import BadInputError

# Fields of the kubeflow.org/v2beta1 MPIJobSpec that the SDK's (v1) model does not have.
V2BETA1_ONLY = {"sshAuthMountPath": "str", "launcherCreationPolicy": "str",
                "mpiImplementation": "str"}
# TensorStack MPIJob (batch.tensorstack.dev/v1beta1): the seed's fields, typed as its API
# reference types them.
T9K_TYPES: dict[str, dict[str, str]] = {
    "T9kMPIJobSpec": {"worker": "T9kWorkerConfig", "mca": "dict(str, str)",
                      "ssh": "T9kSSHConfig", "runPolicy": "T9kRunPolicy",
                      "runMode": "object", "mpiHome": "str", "scheduler": "T9kScheduler"},
    "T9kWorkerConfig": {"replicas": "int", "processesPerWorker": "int",
                        "extraMPIArgs": "list[str]", "cmd": "list[str]",
                        "processRecovery": "T9kProcessRecovery",
                        "template": "V1PodTemplateSpec"},
    "T9kProcessRecovery": {"enable": "bool", "limit": "int"},
    "T9kSSHConfig": {"sshAuthMountPath": "str", "sshdPath": "str"},
    "T9kRunPolicy": {"cleanUpWorkers": "bool"},
    "T9kScheduler": {"t9kScheduler": "T9kQueue"},
    "T9kQueue": {"queue": "str", "priority": "int"},
}
TRAINJOB_SCHEMA = "trainer.kubeflow.org_trainjobs.v1alpha1.json"
T9K_REQUIRED = {"T9kWorkerConfig": ("cmd",), "T9kQueue": ("queue",)}
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|M|G|T|P)?$")


def _models() -> tuple[Any, Any]:
    try:
        from kubeflow.training import models as kubeflow
        from kubernetes.client import models as kubernetes
    except ImportError:
        raise BadInputError("checking job specs needs the Kubernetes models: "
                            "pip install kubeflow-training (the k8s extra: pip install -e "
                            "'.[k8s]' from a checkout)") from None
    return kubeflow, kubernetes


def check_spec(doc: dict[str, Any]) -> list[str]:
    """Problems with one rendered Kubernetes object (empty: it validates)."""
    kubeflow, kubernetes = _models()
    problems: list[str] = []
    api, kind = doc.get("apiVersion"), doc.get("kind")
    walker = _Walker(kubeflow, kubernetes, problems)
    extra = set(doc) - {"apiVersion", "kind", "metadata", "spec"}
    problems += [f"{k}: unknown field" for k in sorted(extra)]
    walker.walk(doc.get("metadata"), "V1ObjectMeta", "metadata")
    spec = doc.get("spec")
    if (api, kind) == ("kubeflow.org/v2beta1", "MPIJob"):
        walker.walk(spec, "KubeflowOrgV1MPIJobSpec", "spec", extra=V2BETA1_ONLY)
        replicas = (spec or {}).get("mpiReplicaSpecs") or {}
        for role in ("Launcher", "Worker"):
            if role not in replicas:
                problems.append(f"spec.mpiReplicaSpecs.{role}: missing")
        unknown = set(replicas) - {"Launcher", "Worker"}
        problems += [f"spec.mpiReplicaSpecs.{r}: not Launcher or Worker" for r in unknown]
        if replicas.get("Launcher", {}).get("replicas", 1) != 1:
            problems.append("spec.mpiReplicaSpecs.Launcher.replicas: must be 1")
    elif (api, kind) == ("batch.tensorstack.dev/v1beta1", "MPIJob"):
        walker.walk(spec, "T9kMPIJobSpec", "spec")
    elif (api, kind) == ("trainer.kubeflow.org/v1alpha1", "TrainJob"):
        from .crdcheck import load_schema, validate

        known = {k: v for k, v in doc.items() if k not in extra}  # extras: reported above
        problems += validate(known, load_schema(TRAINJOB_SCHEMA), "", skip=("metadata",))
    elif (api, kind) == ("batch/v1", "Job"):
        walker.walk(spec, "V1JobSpec", "spec")
    elif (api, kind) == ("v1", "Pod"):
        walker.walk(spec, "V1PodSpec", "spec")
    else:
        problems.append(f"apiVersion {api!r} kind {kind!r}: no schema to check it against")
    return problems


class _Walker:
    def __init__(self, kubeflow: Any, kubernetes: Any, problems: list[str]) -> None:
        self.kubeflow, self.kubernetes, self.problems = kubeflow, kubernetes, problems

    def walk(self, value: Any, type_name: str, at: str,
             extra: dict[str, str] | None = None) -> None:
        if value is None:
            self.problems.append(f"{at}: missing")
            return
        if type_name == "object":
            return
        if type_name in ("str", "int", "bool", "float", "datetime"):
            self._scalar(value, type_name, at)
            return
        if m := re.fullmatch(r"list\[(.+)\]", type_name):
            if not isinstance(value, list):
                self.problems.append(f"{at}: expected a list, got {type(value).__name__}")
                return
            for i, item in enumerate(value):
                self.walk(item, m.group(1), f"{at}[{i}]")
            return
        if m := re.fullmatch(r"dict\(str, (.+)\)", type_name):
            if not isinstance(value, dict):
                self.problems.append(f"{at}: expected a mapping, got {type(value).__name__}")
                return
            quantities = at.endswith(("limits", "requests"))
            for k, v in value.items():
                if quantities and isinstance(v, (int, float)) and not isinstance(v, bool):
                    v = str(v)  # an int-or-string quantity
                if quantities and isinstance(v, str) and not _QUANTITY.match(v):
                    self.problems.append(f"{at}.{k}: {v!r} is not a resource quantity")
                self.walk(v, m.group(1), f"{at}.{k}")
            return
        self._model(value, type_name, at, extra or {})

    def _scalar(self, value: Any, type_name: str, at: str) -> None:
        ok = {"str": isinstance(value, str), "datetime": isinstance(value, str),
              "bool": isinstance(value, bool),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[type_name]
        if not ok:
            self.problems.append(f"{at}: expected {type_name}, got {type(value).__name__} "
                                 f"{value!r}")

    def _model(self, value: Any, type_name: str, at: str, extra: dict[str, str]) -> None:
        if not isinstance(value, dict):
            self.problems.append(f"{at}: expected a {type_name} mapping, got "
                                 f"{type(value).__name__}")
            return
        if type_name in T9K_TYPES:
            fields = dict(T9K_TYPES[type_name])
            for name in T9K_REQUIRED.get(type_name, ()):
                if name not in value:
                    self.problems.append(f"{at}.{name}: missing (required)")
            model = None
        else:
            model = getattr(self.kubeflow, type_name, None) or getattr(self.kubernetes,
                                                                       type_name)
            fields = {model.attribute_map[a]: t for a, t in model.openapi_types.items()}
        fields.update(extra)
        for key, item in value.items():
            if key not in fields:
                self.problems.append(f"{at}.{key}: unknown field of {type_name}")
            else:
                self.walk(item, fields[key], f"{at}.{key}")
        if model is not None:  # required fields: the generated setters refuse None
            by_json = {j: a for a, j in model.attribute_map.items()}
            kwargs = {by_json[k]: v for k, v in value.items() if k in by_json}
            try:
                model(**kwargs)
            except (ValueError, TypeError) as exc:
                self.problems.append(f"{at}: {type_name}: {exc}")
