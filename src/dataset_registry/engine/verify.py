"""Checking artifacts against their records (`registry verify`); `--repair` is the
builder's (`Resolver.resolve(repair=True)`)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from ..errors import VerifyError

if TYPE_CHECKING:
    from .project import Project


def verify(project: Project, names: list[str] | None = None) -> dict[str, list[str]]:
    """{name or key: problems} for `names` (None: every committed artifact). A damaged one
    (even its marker or file table) is reported with the rest, never raised."""
    targets: list[tuple[str, str]] = []
    if names:
        for n in names:
            with contextlib.suppress(VerifyError):  # damaged: store.verify reports it
                project.resolver.built(n)
            targets.append((n, project.key(n)))
    else:
        targets = [(k, k) for k in project.store.committed()]
    return {label: project.store.verify(key) for label, key in targets}


def raise_on_problems(report: dict[str, list[str]]) -> None:
    bad = {k: v for k, v in report.items() if v}
    if bad:
        lines = [f"{name}: {p}" for name, problems in bad.items() for p in problems]
        raise VerifyError("verify failed:\n" + "\n".join(lines) + "\nrebuild a damaged "
                          "dataset in place with: registry resolve --repair NAME")
