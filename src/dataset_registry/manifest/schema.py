"""The manifest file's YAML models: what a `sources`, `files`, `datasets` or `jobs` entry may
hold. Strict: an unknown key or a wrong type is an error (the loader adds file and line)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ManifestError
from ..yamlio import LineMap, dotted

Scalar = str | int | float | bool

NAME = r"^[A-Za-z0-9][A-Za-z0-9._+-]*$"  # pydantic's `$` is the end of text; re's is not
NAME_CHARS = re.compile(NAME[1:-1])  # for re.fullmatch, which refuses "a\n" as well
K8S_NAME = r"^[a-z0-9]([a-z0-9-]{0,50}[a-z0-9])?$"  # fits a Kubernetes object name
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_VARIANTS = 10_000  # datasets one entry may expand to: a matrix multiplies its axes


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Expect(_Model):
    files: int | None = Field(default=None, gt=0)
    md5: str | None = Field(default=None, pattern=r"^[0-9a-f]{32}$")


class Card(_Model):
    """A dataset card: where data comes from and on what terms. Shown and recorded (marker,
    catalog), never keyed: a license added later leaves every key as it was."""

    license: str = ""
    citation: str = ""
    homepage: str = ""
    meta: dict[str, Any] = {}  # free: anything JSON can hold (quote a date: "2012-10-01")


CARD_FIELDS = tuple(Card.model_fields)


class SourceSpec(Card):
    name: str = Field(pattern=NAME)
    layout: str  # a registered layout (plugins.py); checked with its options at load
    options: dict[str, Any] = {}
    description: str = ""
    expect: Expect = Expect()
    tags: list[str] = []


class FileSpec(_Model):
    name: str = Field(pattern=NAME)
    path: str
    description: str = ""
    tags: list[str] = []


class VariantSpec(_Model):
    params: dict[str, Any] = {}
    inputs: dict[str, str] = {}
    tags: list[str] = []
    description: str | None = None
    license: str | None = None  # the card, per variant: set replaces, meta merges
    citation: str | None = None
    homepage: str | None = None
    meta: dict[str, Any] = {}


class DatasetSpec(Card):
    name: str
    recipe: str
    inputs: dict[str, str] = {}
    params: dict[str, Any] = {}
    variants: dict[str, VariantSpec | None] | None = None
    matrix: dict[str, list[Scalar]] | None = None
    tags: list[str] = []
    description: str = ""


class VolumeSpec(_Model):
    claim: str = Field(pattern=K8S_NAME)  # the PersistentVolumeClaim holding data and store
    mount: str = Field(default="/pvc", pattern=r"^/")
    store: str  # the registry store as the cluster sees it: a path under `mount`, or s3://


class TargetSpec(_Model):
    metric: str
    value: float


class JobSpec(_Model):
    name: str = Field(pattern=K8S_NAME)
    description: str = ""
    datasets: dict[str, str] = Field(min_length=1)  # role -> dataset name
    templates: dict[str, str] = Field(min_length=1)  # flavor -> template (*.tmpl), relative
    image: str
    workers: int = Field(default=1, gt=0, le=10_000)  # bounds: past them, only a typo
    gpus_per_worker: int = Field(default=1, ge=0, le=64)
    cpu: int = Field(default=8, gt=0, le=4096)
    memory: str = Field(default="32Gi", pattern=r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
    volume: VolumeSpec
    sources: dict[str, str] = {}  # source name -> its location on the volume (build step)
    registry_image: str | None = None  # an image with dataset-registry and these manifests
    target: TargetSpec | None = None
    values: dict[str, Scalar] = {}  # free values for the templates: ${values.NAME}
    tags: list[str] = []


class ManifestDoc(_Model):
    sources: list[SourceSpec] = []
    files: list[FileSpec] = []
    datasets: list[DatasetSpec] = []
    jobs: list[JobSpec] = []


def manifest_error(exc: ValidationError, lines: LineMap, prefix: tuple[Any, ...] | None, *,
                   origin: Callable[[tuple[Any, ...]], tuple[Any, ...]] | None = None,
                   label: str | None = None) -> ManifestError:
    """A model's validation errors (the first five) as file:line: field messages; `origin`
    maps an error's location to its path in the document (default: under `prefix`)."""
    messages = []
    for err in exc.errors()[:5]:
        loc = tuple(err["loc"])
        path = origin(loc) if origin else (*(prefix or ()), *loc)
        what = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        who = f" ({label})" if label else ""
        messages.append(f"{lines.where(path)}: {dotted(path)}{who}: {what}")
    return ManifestError("\n".join(messages))
