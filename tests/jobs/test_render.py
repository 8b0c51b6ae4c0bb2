"""Training manifests: job specs rendered, checked, submitted and recorded as runs."""

import os
import stat
from pathlib import Path

import pytest
import yaml

from dataset_registry import Registry, SubmitError, TemplateError
from dataset_registry.errors import ManifestError
from dataset_registry.jobs.check import check_spec

from ..conftest import copy_manifests, run_cli, write_imagenet_manifest, write_manifest


@pytest.fixture
def shipped(tmp_path, synth_small) -> Registry:
    """The shipped manifests (MLPerf job included) over the small synthetic source."""
    copy_manifests(tmp_path)
    reg = Registry.open(str(tmp_path))
    reg.set_source("imagenet2012-train", synth_small["imagenet-train"])
    reg.set_source("imagenet2012-val", synth_small["imagenet-val"])
    return reg


def containers(spec: dict, role: str | None = None) -> list[dict]:
    pods = {"t9k": lambda s: [s["spec"]["worker"]["template"]],
            "kubeflow": lambda s: [s["spec"]["mpiReplicaSpecs"][r]["template"]
                                   for r in ([role] if role else ["Launcher", "Worker"])],
            "build": lambda s: [s["spec"]["template"]]}
    kind = {"batch.tensorstack.dev/v1beta1": "t9k", "kubeflow.org/v2beta1": "kubeflow",
            "batch/v1": "build"}[spec["apiVersion"]]
    return [c for pod in pods[kind](spec) for c in pod["spec"]["containers"]]


@pytest.mark.parametrize("flavor", ["t9k", "kubeflow"])
def test_mlperf_job_specs_carry_resources_mounts_paths_and_keys(shipped, flavor):
    rendered = shipped.render_job("mlperf-resnet50", flavor)
    spec = yaml.safe_load(rendered.text)
    assert spec == rendered.spec and check_spec(spec) == []
    keys = {role: shipped.key(f"mlperf-resnet50-recordio-{role}") for role in ("train", "val")}
    where = {role: f"/pvc/registry/{k[:2]}/{k}" for role, k in keys.items()}
    labels, notes = spec["metadata"]["labels"], spec["metadata"]["annotations"]
    assert labels["dataset-registry.io/train-key"] == keys["train"]
    assert labels["dataset-registry.io/val-key"] == keys["val"]
    assert labels["dataset-registry.io/run"] == rendered.run_id
    assert notes["dataset-registry.io/train-location"] == where["train"]
    worker = containers(spec, "Worker")[0]
    limits = worker["resources"]["limits"]
    assert (limits["nvidia.com/gpu"], limits["cpu"], limits["memory"]) == (1, 8, "40Gi")
    mounts = {m["mountPath"]: m["name"] for m in worker["volumeMounts"]}
    assert mounts == {"/pvc": "data", "/dev/shm": "dshm"}
    pod = (spec["spec"]["worker"]["template"] if flavor == "t9k"
           else spec["spec"]["mpiReplicaSpecs"]["Worker"]["template"])
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "mlperf"
    assert volumes["dshm"]["emptyDir"]["medium"] == "Memory"
    if flavor == "t9k":
        assert spec["spec"]["worker"]["replicas"] == 4
        assert spec["spec"]["worker"]["processesPerWorker"] == 1
        cmd = spec["spec"]["worker"]["cmd"]
    else:
        assert spec["spec"]["mpiReplicaSpecs"]["Worker"]["replicas"] == 4
        cmd = containers(spec, "Launcher")[0]["command"]
        assert cmd[cmd.index("-np") + 1] == "4"  # quoted in the template: stays a string
    assert "--accuracy-threshold=0.759" in cmd
    for role, ext in (("train", "rec"), ("train", "idx"), ("val", "rec"), ("val", "idx")):
        flag = f"--data-{role}" + ("-idx" if ext == "idx" else "")
        assert f"{flag}={where[role]}/{role}.{ext}" in cmd


def test_build_step_sets_sources_resolves_and_checks_keys(shipped):
    rendered = shipped.render_job("mlperf-resnet50", "build")
    assert check_spec(rendered.spec) == []
    container = containers(rendered.spec)[0]
    script = container["command"][2]
    assert "registry source set imagenet2012-train /pvc/imagenet/ILSVRC2012_img_train.tar" \
        in script
    assert "registry resolve mlperf-resnet50-recordio-train mlperf-resnet50-recordio-val" \
        in script
    key = shipped.key("mlperf-resnet50-recordio-val")
    assert f'test "$(registry path mlperf-resnet50-recordio-val)" = /pvc/registry/{key[:2]}/' \
           f"{key} ||" in script
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["DATASET_REGISTRY_STORE"] == "/pvc/registry"


def small_job(root: Path, template: str, *, datasets: str = "{train: shards}",
              extra: str = "") -> None:
    """A job over a webdataset variant of the val source, with the given template."""
    write_imagenet_manifest(root, """
  - name: shards
    recipe: webdataset
    inputs: {images: val, labels: labels}
    params: {split: val, require_all_classes: false, shard_count: 200}
""")
    write_manifest(root, f"""
jobs:
  - name: smoke
    datasets: {datasets}
    templates: {{train: job.yaml.tmpl}}
    image: trainer:1
    volume: {{claim: data, store: /data/registry}}
{extra}""", name="job.yaml")
    (root / "manifests" / "job.yaml.tmpl").write_text(template)


POD = """apiVersion: v1
kind: Pod
metadata:
  name: ${job.name}
spec:
  restartPolicy: Never
  containers:
    - name: train
      image: ${job.image}
      command: [sh, -c, "for s in ${data.train.path}/*.tar; do echo $s ${HOME} $$5; done"]
      resources:
        limits:
          nvidia.com/gpu: ${job.gpus_per_worker}
"""


def test_runs_are_recorded_and_queryable_by_source_fingerprint(tmp_path, synth_small):
    small_job(tmp_path, POD)
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    built = reg.resolve("shards", jobs=1)
    first = reg.render_job("smoke")
    second = reg.render_job("smoke")
    command = first.spec["spec"]["containers"][0]["command"][2]
    # shell variables stay as written; $$ is a literal $
    assert command == f"for s in /data/registry/{built.key[:2]}/{built.key}/*.tar; do echo $s " \
                      "${HOME} $5; done"
    assert first.spec["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    fingerprint = reg.resolver.source_info("val").fingerprint
    rows = reg.sql("""
        SELECT DISTINCT r.run_id, r.job, r.action FROM runs r
        JOIN run_inputs i USING (run_id)
        JOIN files f ON f.key = i.key
        WHERE f.source = ? ORDER BY r.run_id""", [fingerprint]).rows
    assert sorted(r[0] for r in rows) == sorted([first.run_id, second.run_id])
    assert {r[1:] for r in rows} == {("smoke", "render")}
    other = reg.sql("SELECT count(*) FROM runs r JOIN run_inputs i USING (run_id) "
                    "JOIN files f ON f.key = i.key WHERE f.source = 'nope'").rows
    assert other == [(0,)]


def test_submit_pipes_to_kubectl_and_records_the_run(tmp_path, synth_small):
    small_job(tmp_path, POD)
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    received = tmp_path / "applied.yaml"
    kubectl = tmp_path / "bin" / "kubectl"  # a stand-in binary: no cluster in CI
    kubectl.parent.mkdir()
    kubectl.write_text(f'#!/bin/sh\n[ "$1 $2 $3" = "apply -f -" ] || exit 9\n'
                       f'cat > {received}\necho "pod/smoke created"\n')
    kubectl.chmod(kubectl.stat().st_mode | stat.S_IEXEC)
    rendered, output = reg.submit_job("smoke", kubectl=str(kubectl))
    assert output.strip() == "pod/smoke created" and received.read_text() == rendered.text
    rows = reg.sql("SELECT action, spec_xxh3 FROM runs WHERE run_id = ?",
                   [rendered.run_id]).rows
    assert rows == [("submit", rendered.xxh3)]
    kubectl.write_text("#!/bin/sh\necho 'error: no cluster' >&2\nexit 1\n")
    with pytest.raises(SubmitError, match="exited 1: error: no cluster"):
        reg.submit_job("smoke", kubectl=str(kubectl))


def test_submit_without_kubectl_says_so(tmp_path, synth_small):
    small_job(tmp_path, POD)
    env = {"PATH": os.path.dirname(os.__file__), "DATASET_REGISTRY_STATE": str(tmp_path / "s")}
    run_cli("source", "set", "val", synth_small["imagenet-val"], cwd=tmp_path, env=env)
    import sys
    env["PATH"] = os.path.dirname(sys.executable)  # python, but no kubectl
    proc = run_cli("job", "submit", "smoke", cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr
    assert "kubectl is not on PATH, so nothing was submitted" in proc.stderr
    assert "registry job render smoke" in proc.stderr


def test_a_template_missing_a_dataset_placeholder_is_refused(tmp_path, synth_small):
    small_job(tmp_path, POD.replace("${data.train.path}", "/data"))
    env = {"DATASET_REGISTRY_STATE": str(tmp_path / "s")}
    run_cli("source", "set", "val", synth_small["imagenet-val"], cwd=tmp_path, env=env)
    proc = run_cli("job", "render", "smoke", cwd=tmp_path, env=env)
    assert proc.returncode == 2
    assert "job.yaml.tmpl: flavor 'train' of job smoke never uses ${data.train.path}: the " \
           "job would not read dataset 'shards'" in proc.stderr
    assert proc.stdout == ""


def test_an_unknown_placeholder_names_file_and_line(tmp_path, synth_small):
    small_job(tmp_path, POD.replace("${job.image}", "${job.imagee}"))
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    with pytest.raises(TemplateError, match=r"job\.yaml\.tmpl:9: spec\.containers\[0\]\.image: "
                                            r"unknown placeholder \$\{job\.imagee\}"):
        reg.render_job("smoke")
    small_job(tmp_path, POD.replace("metadata:", "metadata:\n  ${job.name}: x\n  x:"))
    with pytest.raises(TemplateError, match="placeholders belong in values, not in keys"):
        Registry.open(str(tmp_path)).render_job("smoke")
    small_job(tmp_path, "apiVersion: v1\nkind: Pod\nspec: {a: [}\n")
    with pytest.raises(TemplateError, match=r"job\.yaml\.tmpl:3: invalid YAML"):
        Registry.open(str(tmp_path)).render_job("smoke")


def test_a_job_naming_an_unknown_dataset_is_a_manifest_error(tmp_path):
    small_job(tmp_path, POD, datasets="{train: shardz}")
    proc = run_cli("job", "list", cwd=tmp_path)
    assert proc.returncode == 2
    assert "manifests/job.yaml:3: job smoke: datasets.train: 'shardz' is not defined" \
        in proc.stderr
    small_job(tmp_path, POD, datasets="{train: val}")
    with pytest.raises(ManifestError, match="'val' is a source; a training job reads datasets"):
        Registry.open(str(tmp_path)).manifests  # noqa: B018


def test_template_names_must_end_in_tmpl_and_exist(tmp_path):
    small_job(tmp_path, POD)
    text = (tmp_path / "manifests" / "job.yaml").read_text()
    (tmp_path / "manifests" / "job.yaml").write_text(text.replace("job.yaml.tmpl", "job.yaml"))
    with pytest.raises(ManifestError, match=r"jobs\[0\]\.templates\.train: 'job\.yaml': a job "
                                            r"spec template's name must end in \.tmpl"):
        Registry.open(str(tmp_path)).manifests  # noqa: B018
    (tmp_path / "manifests" / "job.yaml").write_text(text.replace("job.yaml.tmpl", "no.tmpl"))
    with pytest.raises(ManifestError, match=r"template 'no\.tmpl' does not exist"):
        Registry.open(str(tmp_path)).manifests  # noqa: B018


def test_the_build_flavor_needs_every_source_location(tmp_path, synth_small):
    build = ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: b}\nspec:\n  template:\n"
             "    spec:\n      restartPolicy: Never\n      containers:\n"
             "        - {name: b, image: x, command: [sh, -c, '${build.script}']}\n")
    small_job(tmp_path, POD)
    (tmp_path / "manifests" / "build.yaml.tmpl").write_text(build)
    text = (tmp_path / "manifests" / "job.yaml").read_text()
    (tmp_path / "manifests" / "job.yaml").write_text(
        text.replace("{train: job.yaml.tmpl}", "{train: job.yaml.tmpl, build: build.yaml.tmpl}"))
    reg = Registry.open(str(tmp_path))
    reg.set_source("val", synth_small["imagenet-val"])
    with pytest.raises(TemplateError, match=r"sources\.val: missing; the build step needs the "
                                            r"location of source 'val' on the volume"):
        reg.render_job("smoke", "build")
    with pytest.raises(TemplateError, match="has no flavor 'gpu' \\(it has: train, build\\)"):
        reg.render_job("smoke", "gpu")


SEED = (Path(__file__).parents[1] / "fixtures" / "jobs"
        / "t9k-mlperf-image-classification-mpijob.yaml")


def diff(a, b, at=""):
    """Every path where two YAML documents differ, recursively: (path, seed's, render's)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in diff(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{at}.{k}")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True))
                for d in diff(x, y, f"{at}[{i}]")]
    return [] if (a == b and type(a) is type(b)) else [(at.lstrip("."), a, b)]


def test_the_t9k_render_is_the_seed_but_for_paths_keys_and_resources(shipped):
    """Field for field: the only differences are the job's name, the dataset keys and
    locations (labels, annotations) and the four data paths; resources, replicas, image and
    volume come from the manifest, which asks for what the seed has."""
    seed = yaml.safe_load(SEED.read_text())
    rendered = shipped.render_job("mlperf-resnet50", "t9k", check=True)
    meta = rendered.spec["metadata"]
    expected = {"metadata.name": ("resnet", "mlperf-resnet50"),
                "metadata.labels": ("<absent>", meta["labels"]),
                "metadata.annotations": ("<absent>", meta["annotations"])}
    cmd = seed["spec"]["worker"]["cmd"]
    for role in ("train", "val"):
        key = shipped.key(f"mlperf-resnet50-recordio-{role}")
        assert meta["labels"][f"dataset-registry.io/{role}-key"] == key
        for suffix, ext in (("", "rec"), ("-idx", "idx")):
            flag = f"--data-{role}{suffix}="
            i = cmd.index(f"{flag}/pvc/imagenet_processed/{role}.{ext}")
            expected[f"spec.worker.cmd[{i}]"] = (cmd[i], f"{flag}/pvc/registry/{key[:2]}/"
                                                          f"{key}/{role}.{ext}")
    assert {path: (a, b) for path, a, b in diff(seed, rendered.spec)} == expected
    assert len(cmd) == 57  # python, the script and its 55 flags, all kept
    assert rendered.spec["spec"]["runPolicy"] == {"cleanUpWorkers": True}


def seed_training_command(shipped) -> list[str]:
    """The seed's `python train_imagenet.py ...`, with this registry's data paths."""
    rendered = shipped.render_job("mlperf-resnet50", "t9k")
    return rendered.spec["spec"]["worker"]["cmd"]


@pytest.mark.parametrize("flavor", ["kubeflow", "trainjob"])
def test_kubeflow_flavors_train_with_the_seeds_command_env_and_mca(shipped, flavor):
    seed = yaml.safe_load(SEED.read_text())
    rendered = shipped.render_job("mlperf-resnet50", flavor, check=True)
    if flavor == "kubeflow":
        launcher = containers(rendered.spec, "Launcher")[0]
        command, env = launcher["command"], launcher["env"]
        assert containers(rendered.spec, "Worker")[0]["env"] == env
    else:
        trainer = rendered.spec["spec"]["trainer"]
        command, env = trainer["command"], trainer["env"]
        assert (trainer["numNodes"], trainer["numProcPerNode"]) == (4, 1)
    seed_env = seed["spec"]["worker"]["template"]["spec"]["containers"][0]["env"]
    assert env == seed_env and len(env) == 16
    train = command[command.index("python"):]
    assert train == seed_training_command(shipped)
    mpi = command[:command.index("python")]
    assert mpi[mpi.index("-np") + 1] == "4"
    assert " ".join(mpi).count("--mca btl ^openib --mca pml ob1") == 1
    assert [mpi[i + 1] for i, a in enumerate(mpi) if a == "-x"] == [e["name"] for e in env]
    for flag in ("--optimizer=sgdwfastlars", "--lr=10.5", "--lr-step-epochs=pow2",
                 "--num-epochs=39", "--dtype=float16", "--input-layout=NHWC", "--use-dali",
                 "--batch-size=408", "--network=resnet-v1b-stats-fl"):
        assert flag in train


def test_an_s3_cluster_store_copies_the_shards_onto_the_volume_first(shipped):
    for flavor in ("t9k", "kubeflow"):
        rendered = shipped.render_job("mlperf-resnet50", flavor, check=True,
                                      cluster_store="s3://bucket/registry")
        key = shipped.key("mlperf-resnet50-recordio-train")
        local = f"/pvc/registry-s3/{key[:2]}/{key}"
        text = rendered.text
        assert f"--data-train={local}/train.rec" in text and "s3://" not in \
            " ".join(c for c in text.splitlines() if "--data-" in c)
        notes = rendered.spec["metadata"]["annotations"]
        assert notes["dataset-registry.io/train-location"] == f"s3://bucket/registry/{key[:2]}/{key}"
        assert notes["dataset-registry.io/train-copy"] == local
        assert text.count("name: copy-datasets") == 1
        assert f"copy s3://bucket/registry/{key[:2]}/{key} {local}\n" in text
    worker = rendered.spec["spec"]["mpiReplicaSpecs"]["Worker"]["template"]["spec"]
    assert worker["initContainers"][0]["volumeMounts"] == [{"name": "data", "mountPath": "/pvc"}]
    assert "initContainers" not in rendered.spec["spec"]["mpiReplicaSpecs"]["Launcher"][
        "template"]["spec"]  # the launcher reads no data
    with pytest.raises(TemplateError, match="a TrainJob's runtimePatches cannot add the init "
                                            "container that copies the shards"):
        shipped.render_job("mlperf-resnet50", "trainjob", cluster_store="s3://bucket/registry")


def test_an_s3_store_with_no_pod_mounting_the_volume_is_refused(tmp_path, synth_small):
    small_job(tmp_path, POD)
    env = {"DATASET_REGISTRY_STATE": str(tmp_path / "s")}
    run_cli("source", "set", "val", synth_small["imagenet-val"], cwd=tmp_path, env=env)
    proc = run_cli("job", "render", "smoke", "--cluster-store", "s3://b/r", cwd=tmp_path,
                   env=env)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().splitlines()[-1].endswith(
        "job.yaml.tmpl: flavor 'train' of job smoke: with an s3:// cluster store the job reads "
        "copies on its volume, and no pod in this spec mounts a volume at /pvc, so there is "
        "nowhere to copy the shards to before training")
    assert "Traceback" not in proc.stderr
