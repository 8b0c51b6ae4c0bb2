"""Manifests: the YAML models, variant and matrix expansion, and graph checks.

A manifest file holds `sources` (raw data the user points at), `files`
(shipped inputs such as label lists), `datasets` (derivations) and `jobs`
(training jobs that read datasets, with job spec templates). Loading every
`*.yaml` under a folder yields a `Manifests` graph of named nodes, or a
ManifestError naming the file, the line and the field. Job spec templates end
in `.tmpl`, so the loader never reads them as manifests.

Parsing imports no recipe: a dataset's params are checked against its recipe on first
use (`DatasetNode.params`), or all at once (`Manifests.check_recipes`), with the same
file:line messages.

    schema.py   the YAML models
    loader.py   files -> nodes: variants and matrices expanded, paths and layouts checked
    graph.py    inputs name nodes, no dependency cycles, jobs read datasets
    nodes.py    the loaded graph (`Manifests`, its nodes)
    binding.py  a dataset against its recipe: params and input roles
"""

from __future__ import annotations

from .loader import load_manifests
from .nodes import DatasetNode, FileNode, JobNode, Manifests, Node, ParamsOrigin, SourceNode
from .schema import (
    CARD_FIELDS,
    MAX_VARIANTS,
    DatasetSpec,
    Expect,
    FileSpec,
    JobSpec,
    ManifestDoc,
    Scalar,
    SourceSpec,
    TargetSpec,
    VariantSpec,
    VolumeSpec,
)

__all__ = [
    "CARD_FIELDS", "MAX_VARIANTS", "DatasetNode", "DatasetSpec", "Expect", "FileNode",
    "FileSpec", "JobNode", "JobSpec", "ManifestDoc", "Manifests", "Node", "ParamsOrigin",
    "Scalar", "SourceNode", "SourceSpec", "TargetSpec", "VariantSpec", "VolumeSpec",
    "load_manifests",
]
