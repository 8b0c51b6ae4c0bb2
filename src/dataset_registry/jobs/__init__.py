"""Training jobs: manifests of GPU jobs rendered into Kubernetes specs (`spec`), checked
against the generated Kubernetes models and published CRD schemas (`check`, `crdcheck`,
`schemas/`), with a copy step for object-storage cluster stores (`stage`).

`dataset_registry.jobs` was one module before it was a package: its names are still
found here (imported on first use) for code written against it.
"""

from .._moved import forwarding

__getattr__ = forwarding(__name__, "spec")
