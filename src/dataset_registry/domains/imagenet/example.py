"""`registry init --example imagenet`: the shipped ImageNet manifests, as package data."""

from __future__ import annotations

from importlib import resources

from ...init import Example

EXAMPLE = Example("the shipped ImageNet manifests (sources, calibration, tiny, training, "
                  "jobs)", "imagenet2012-val",
                  manifests=resources.files(__package__) / "manifests")
