"""Training jobs over an `s3://` cluster store: copy the artifacts onto the pod's volume first.

The MLPerf script (MXNet + DALI) reads local files, so with an object-store cluster store the
job reads `${data.ROLE.path}` as a folder on the volume, `<mount>/registry-s3/<key[:2]>/<key>`,
and every pod that mounts the volume gets an init container that copies the artifact there
(`aws s3 cp --recursive`). A copy lands in a private folder renamed into place whole, so a
finished folder is a complete copy: pods sharing a volume copy once, and a pod killed
mid-copy leaves only its private folder, which the next try removes. Credentials and the
endpoint come from the Secret `dataset-registry-s3` when it exists (its keys become the
environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL, ...), else from the
pod's own identity.
"""

from __future__ import annotations

import posixpath
import shlex
from collections.abc import Iterator
from typing import Any

from ..errors import TemplateError
from ..stores import artifact_path

COPY_IMAGE = "amazon/aws-cli:2.17.0"
SECRET = "dataset-registry-s3"
STAGED = "registry-s3"  # the folder under the volume's mount

_COPY = """copy() {  # copy() S3_URI DIR: a finished DIR is a whole copy, renamed into place
  [ -d "$2" ] && return 0
  tmp="$2.part-$HOSTNAME"
  rm -rf "$tmp" && mkdir -p "$(dirname "$2")"
  aws s3 cp --recursive --only-show-errors "$1/" "$tmp"
  mv -T "$tmp" "$2" || { rm -rf "$tmp"; [ -d "$2" ]; }  # another pod's copy won: fine
}
"""


def staged_path(mount: str, key: str) -> str:
    """Where the copy of artifact `key` lands on the volume."""
    return posixpath.join(mount, STAGED, artifact_path(key))


def add_copy_step(doc: dict[str, Any], mount: str, copies: list[tuple[str, str]],
                  where: str) -> None:
    """Give every pod that mounts `mount` an init container copying each (uri, dir) of
    `copies`; refuse a spec where no pod does (the job could not read the copies)."""
    if doc.get("kind") == "TrainJob":  # its CRD lets runtimePatches add no container
        raise TemplateError(f"{where}: a TrainJob's runtimePatches cannot add the init container "
                            "that copies the shards from an s3:// cluster store onto the "
                            "volume; use a cluster store on the volume, or flavor t9k/kubeflow")
    pods = [pod for pod in _pod_specs(doc) if _data_mount(pod, mount) is not None]
    if not pods:
        raise TemplateError(f"{where}: with an s3:// cluster store the job reads copies on its "
                            f"volume, and no pod in this spec mounts a volume at {mount}, so "
                            "there is nowhere to copy the shards to before training")
    script = "set -eu\n" + _COPY + "".join(
        f"copy {shlex.quote(uri)} {shlex.quote(path)}\n" for uri, path in copies)
    for pod in pods:
        volume = _data_mount(pod, mount)
        pod.setdefault("initContainers", []).insert(0, {
            "name": "copy-datasets", "image": COPY_IMAGE, "command": ["sh", "-c", script],
            "envFrom": [{"secretRef": {"name": SECRET, "optional": True}}],
            "volumeMounts": [{"name": volume, "mountPath": mount}]})


def _pod_specs(value: Any) -> Iterator[dict[str, Any]]:
    """Every mapping with a `containers` list: the pod specs."""
    if isinstance(value, dict):
        if isinstance(value.get("containers"), list):
            yield value
        for item in value.values():
            yield from _pod_specs(item)
    elif isinstance(value, list):
        for item in value:
            yield from _pod_specs(item)


def _data_mount(pod: dict[str, Any], mount: str) -> str | None:
    """The name of the volume a container of `pod` mounts at `mount`, if any."""
    for container in pod["containers"]:
        for m in (container or {}).get("volumeMounts") or []:
            if isinstance(m, dict) and m.get("mountPath") == mount and m.get("name"):
                return str(m["name"])
    return None
