"""Examples `registry init --example NAME` writes from package data (so that a pip install
has them): `plugin`, a project with its own plugin module (see `plugin/`)."""
