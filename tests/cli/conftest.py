from __future__ import annotations

from pathlib import Path

import pytest

from .clikit import make_project


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A set-up project (see clikit), the working folder."""
    return make_project(tmp_path, monkeypatch)
