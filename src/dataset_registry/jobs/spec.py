"""Training jobs: job spec templates filled with dataset locations and keys.

A training manifest (`jobs:` in a manifest) names the datasets a GPU job
reads, by role, and one template per flavor (`t9k`, `kubeflow`, `build`, ...).
Templates are YAML files ending in `.tmpl` whose string values may hold
placeholders `${data.train.path}`, `${job.workers}`, ... (lowercase, dotted).
Only those are placeholders: a shell `$VAR` or `${VAR}` stays as written, and
`$$` is a literal `$`. A value that is one placeholder alone takes the value's
type (an int stays an int) unless it is written in quotes. The template is
parsed before anything is filled in, so no dataset path or key can change the
document's structure.

With an `s3://` cluster store, `${data.ROLE.path}` of a training flavor is a copy on the
job's volume, made by an init container before training (jobs/stage.py); `build` writes the store.

Every dataset role must appear as `${data.ROLE.path}` in a training flavor, and
the `build` flavor must run `${build.script}`; a template that misses them, or
uses a placeholder nobody defines, is a TemplateError naming file and line.
The rendered spec carries each dataset's key as a label and its name and
location as annotations; every render and submit is a row in the catalog's
`runs` table, with one `run_inputs` row per dataset key.
"""

from __future__ import annotations

import posixpath
import shlex
import shutil
import string
import subprocess
import uuid
from dataclasses import dataclass, field
from typing import Any

import xxhash
import yaml

from ..engine.build import Resolver
from ..errors import ManifestError, SubmitError, TemplateError, did_you_mean
from ..manifest import JobNode, SourceNode
from ..stores import artifact_path
from ..yamlio import LineMap, dotted, load_yaml
from .stage import add_copy_step, staged_path

BUILD = "build"
LABEL = "dataset-registry.io"


class JobTemplate(string.Template):
    """`${lower.dotted.name}` only; everything else with a `$` is left alone."""

    flags = 0
    pattern = r"""
        \$(?:
          (?P<escaped>\$) |
          \{(?P<braced>[a-z][a-z0-9_]*(?:\.[a-z0-9_-]+)*)\} |
          (?P<named>(?!)) |
          (?P<invalid>(?!))
        )"""


@dataclass(frozen=True)
class JobInput:
    role: str
    name: str  # the dataset
    key: str
    location: str  # the artifact under the cluster store: a path on the volume, or s3://
    built_here: bool  # committed in this registry's store
    read_at: str = ""  # where the job reads it: `location`, or its copy on the volume

    @property
    def path(self) -> str:
        return self.read_at or self.location


@dataclass
class RenderedJob:
    job: str
    flavor: str
    run_id: str
    text: str  # the YAML to apply
    spec: dict[str, Any]
    inputs: list[JobInput] = field(default_factory=list)
    template: str = ""

    @property
    def xxh3(self) -> str:
        return xxhash.xxh3_128_hexdigest(self.text.encode())


def cluster_location(store_root: str, key: str) -> str:
    """Where the store layout puts artifact `key` under a store root seen by the cluster."""
    if "://" in store_root:
        return f"{store_root.rstrip('/')}/{artifact_path(key)}"
    return posixpath.join(store_root, artifact_path(key))


def render(resolver: Resolver, job: JobNode, flavor: str | None = None, *,
           cluster_store: str | None = None, run_id: str | None = None) -> RenderedJob:
    spec = job.spec
    assert spec is not None
    flavor = flavor or next(iter(job.templates))
    if flavor not in job.templates:
        raise TemplateError(f"{job.where}: job {job.name} has no flavor {flavor!r} "
                            f"(it has: {', '.join(job.templates)})")
    run_id = run_id or uuid.uuid4().hex[:16]
    store_root = cluster_store or spec.volume.store
    if "://" not in store_root and not store_root.startswith("/"):
        raise TemplateError(f"{job.where}: job {job.name}: the cluster store {store_root!r} "
                            "must be an absolute path or an s3:// URI")
    staged = "://" in store_root and flavor != BUILD  # the job reads copies on its volume
    inputs = []
    for role, name in spec.datasets.items():  # only keys and locations: no source is read
        key = resolver.key(name)
        inputs.append(JobInput(role, name, key, cluster_location(store_root, key),
                               resolver.store.marker(key) is not None,
                               staged_path(spec.volume.mount, key) if staged else ""))
    values = _values(job, run_id, store_root, inputs)
    if flavor == BUILD:
        values["build.script"] = build_script(resolver, job, inputs)
    path = job.templates[flavor]
    with open(path, encoding="utf-8") as f:
        try:
            doc, lines = load_yaml(f.read(), path)
        except ManifestError as exc:
            raise TemplateError(str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
        raise TemplateError(f"{path}: a job spec template is one Kubernetes object with a "
                            "metadata mapping")
    used: set[str] = set()
    filled = _fill(doc, values, (), lines, used)
    needed = ["build.script"] if flavor == BUILD else [f"data.{i.role}.path" for i in inputs]
    for name in needed:
        if name not in used:
            what = "the build step would not build anything" if flavor == BUILD else \
                f"the job would not read dataset {spec.datasets[name.split('.')[1]]!r}"
            raise TemplateError(f"{path}: flavor {flavor!r} of job {job.name} never uses "
                                f"${{{name}}}: {what}")
    if staged:
        add_copy_step(filled, spec.volume.mount, [(i.location, i.path) for i in inputs],
                      f"{path}: flavor {flavor!r} of job {job.name}")
    _stamp(filled["metadata"], job.name, run_id, inputs)
    text = yaml.dump(filled, Dumper=_Dumper, sort_keys=False, width=1000)
    return RenderedJob(job.name, flavor, run_id, text, filled, inputs, path)


class _Dumper(yaml.SafeDumper):
    """Safe YAML, with multi-line strings (scripts) as literal blocks."""


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _values(job: JobNode, run_id: str, store_root: str, inputs: list[JobInput]
            ) -> dict[str, Any]:
    spec = job.spec
    assert spec is not None
    values: dict[str, Any] = {
        "job.name": job.name, "job.image": spec.image, "job.workers": spec.workers,
        "job.gpus_per_worker": spec.gpus_per_worker,
        "job.gpus": spec.workers * spec.gpus_per_worker, "job.cpu": spec.cpu,
        "job.memory": spec.memory, "volume.claim": spec.volume.claim,
        "volume.mount": spec.volume.mount, "store.root": store_root, "run.id": run_id,
    }
    if spec.target is not None:
        values["job.target.metric"] = spec.target.metric
        values["job.target.value"] = spec.target.value
    if spec.registry_image is not None:
        values["job.registry_image"] = spec.registry_image
    for i in inputs:
        values.update({f"data.{i.role}.path": i.path, f"data.{i.role}.key": i.key,
                       f"data.{i.role}.name": i.name})
    values.update({f"values.{k}": v for k, v in spec.values.items()})
    return values


def _fill(value: Any, values: dict[str, Any], at: tuple[Any, ...], lines: LineMap,
          used: set[str]) -> Any:
    if isinstance(value, dict):
        for k in value:
            if isinstance(k, str) and JobTemplate.pattern.search(k):
                raise TemplateError(f"{lines.where((*at, k))}: placeholders belong in values, "
                                    f"not in keys ({k!r})")
        return {k: _fill(v, values, (*at, k), lines, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, values, (*at, i), lines, used) for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value
    names = [m.group("braced") for m in JobTemplate.pattern.finditer(value)
             if m.group("braced")]
    for name in names:
        if name not in values:
            known = ", ".join(sorted(values))
            raise TemplateError(f"{lines.where(at)}: {dotted(at)}: unknown placeholder "
                                f"${{{name}}} (known: {known}){did_you_mean(name, values)}")
    used.update(names)
    if len(names) == 1 and value == f"${{{names[0]}}}" and at not in lines.quoted:
        return values[names[0]]
    return JobTemplate(value).substitute({k: str(v) for k, v in values.items()})


def _stamp(metadata: dict[str, Any], job: str, run_id: str, inputs: list[JobInput]) -> None:
    """Keys as labels (selectable: `kubectl get -l ...`), names and locations as annotations."""
    labels = metadata.setdefault("labels", {}) or {}
    annotations = metadata.setdefault("annotations", {}) or {}
    labels[f"{LABEL}/job"] = job
    labels[f"{LABEL}/run"] = run_id
    for i in inputs:
        labels[f"{LABEL}/{i.role}-key"] = i.key
        annotations[f"{LABEL}/{i.role}-dataset"] = i.name
        annotations[f"{LABEL}/{i.role}-location"] = i.location
        if i.path != i.location:
            annotations[f"{LABEL}/{i.role}-copy"] = i.path
    metadata["labels"], metadata["annotations"] = labels, annotations


def build_script(resolver: Resolver, job: JobNode, inputs: list[JobInput]) -> str:
    """The shell the build step runs: set the sources, resolve, check the keys agree."""
    spec = job.spec
    assert spec is not None
    names = [i.name for i in inputs]
    sources = sorted({t for n in resolver.closure(names) for t in n.inputs.values()
                      if isinstance(resolver.manifests.nodes[t], SourceNode)})
    missing = [s for s in sources if s not in spec.sources]
    if missing:
        raise TemplateError(f"{job.where}: job {job.name}: sources.{missing[0]}: missing; the "
                            f"build step needs the location of source {missing[0]!r} on the "
                            "volume")
    lines = ["set -eu"]
    lines += [f"registry source set {s} {shlex.quote(spec.sources[s])}" for s in sources]
    lines.append("registry resolve " + " ".join(names))
    for i in inputs:  # other sources or manifests would give other keys: fail loudly
        lines.append(f'test "$(registry path {i.name})" = {shlex.quote(i.location)} || '
                     f'{{ echo "{i.name}: key differs from the rendered {i.key}" >&2; exit 1; }}')
    return "\n".join(lines) + "\n"


def submit(rendered: RenderedJob, kubectl: str | None = None) -> str:
    """`kubectl apply -f -` the rendered spec; kubectl's output."""
    kubectl = kubectl or shutil.which("kubectl")
    if kubectl is None:
        raise SubmitError("kubectl is not on PATH, so nothing was submitted. Install kubectl "
                          f"and point it at the cluster, or run `registry job render "
                          f"{rendered.job} --flavor {rendered.flavor}` and apply the spec "
                          "where kubectl works")
    try:
        proc = subprocess.run([kubectl, "apply", "-f", "-"], input=rendered.text,
                              capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SubmitError(f"{kubectl} apply failed to run: {exc}") from None
    if proc.returncode != 0:
        raise SubmitError(f"{kubectl} apply exited {proc.returncode}: "
                          f"{proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout
