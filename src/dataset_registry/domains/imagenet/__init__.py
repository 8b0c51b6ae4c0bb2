"""ImageNet (ILSVRC2012) as a plugin: its source layouts, label files and schemes."""
