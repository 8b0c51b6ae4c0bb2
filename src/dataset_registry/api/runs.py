"""Training jobs from the Registry: render or submit a job spec, and record the run (in the
store, the truth, then in the catalog)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from ..catalog import warn_once
from ..engine import catalog_sync
from ..errors import CatalogBusyError, TemplateError

if TYPE_CHECKING:
    from ..jobs.spec import RenderedJob
    from .registry import Registry


def render_job(reg: Registry, name: str, flavor: str | None, *, cluster_store: str | None,
               check: bool) -> RenderedJob:
    from ..jobs.spec import render

    rendered = render(reg.resolver, reg.manifests.job(name), flavor, cluster_store=cluster_store)
    if check:
        from ..jobs.check import check_spec

        problems = check_spec(rendered.spec)
        if problems:
            raise TemplateError(f"{rendered.template}: the rendered {rendered.flavor} spec "
                                "does not validate:\n" + "\n".join(problems))
    record_run(reg, rendered, "render", {})
    return rendered


def submit_job(reg: Registry, name: str, flavor: str | None, *, cluster_store: str | None,
               kubectl: str | None) -> tuple[RenderedJob, str]:
    from ..jobs.spec import render, submit

    rendered = render(reg.resolver, reg.manifests.job(name), flavor, cluster_store=cluster_store)
    output = submit(rendered, kubectl)
    record_run(reg, rendered, "submit", {"kubectl": output.strip()})
    return rendered, output


def record_run(reg: Registry, rendered: RenderedJob, action: str, extra: dict[str, Any]) -> None:
    """The run goes to the store first (the truth, re-indexed on rebuild), then the
    catalog."""
    record = {"run_id": rendered.run_id, "job": rendered.job, "flavor": rendered.flavor,
              "action": action, "created_at": time.time(), "spec_xxh3": rendered.xxh3,
              "detail": {"template": rendered.template,
                         "inputs": {i.role: {"dataset": i.name, "location": i.location,
                                             "built_here": i.built_here}
                                    for i in rendered.inputs},
                         **extra},
              "inputs": [(i.role, i.key) for i in rendered.inputs]}
    reg.store.put_record("runs", rendered.run_id, record)
    catalog_sync.upkeep_once(reg, strict=True, runs=True)
    try:
        reg.catalog.record_run(record)
    except CatalogBusyError as exc:
        warn_once(f"run {rendered.run_id} kept in the store, not yet in the catalog: {exc}",
                  about=str(exc))
