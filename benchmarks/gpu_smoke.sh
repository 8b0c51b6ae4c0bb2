#!/bin/sh
# The GPU smoke run on one machine: synthesize a class-dependent ImageNet-shaped set,
# resolve the smoke job's WebDataset variants, render its Kubernetes Job, and run that
# Job's container command here (the image's /opt/dataset-registry is this checkout).
#     sh benchmarks/gpu_smoke.sh [WORKDIR] [MINUTES]
set -eu
W=${1:-/tmp/smoke}
MINUTES=${2:-3}
command -v registry >/dev/null 2>&1 || registry() { python3 -m dataset_registry.cli "$@"; }
mkdir -p "$W"
export DATASET_REGISTRY_STORE="$W/registry" DATASET_REGISTRY_CATALOG="$W/catalog.duckdb" \
       DATASET_REGISTRY_STATE="$W/state"
[ -f "$W/src/ILSVRC2012_img_train.tar" ] || registry synth imagenet "$W/src" \
    --train-classes 10 --train-per-class 1300 --val-images 50000 --size 64x64 --no-kaggle
registry source set imagenet2012-train "$W/src/ILSVRC2012_img_train.tar"
registry source set imagenet2012-val "$W/src/ILSVRC2012_img_val.tar"
registry resolve smoke-webdataset-train smoke-webdataset-val
registry job render smoke-resnet --flavor k8s --cluster-store "$W/registry" -o "$W/job.yaml"
python3 - "$W/job.yaml" "$MINUTES" > "$W/cmd" <<'PY'
import shlex, sys, yaml
spec = yaml.safe_load(open(sys.argv[1]))
cmd = spec["spec"]["template"]["spec"]["containers"][0]["command"]
cmd = [c.replace("/opt/dataset-registry/", "") for c in cmd]
cmd = [f"--minutes={sys.argv[2]}" if c.startswith("--minutes=") else c for c in cmd]
print(shlex.join(cmd))
PY
cat "$W/cmd"
sh "$W/cmd"
