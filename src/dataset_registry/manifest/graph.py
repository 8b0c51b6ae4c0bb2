"""The graph checks a manifest needs no recipe for: every input names a node, nothing depends
on itself, and every training job reads datasets. (Whether a role is one the recipe takes,
and of the right kind, is checked with the params: binding.py.)"""

from __future__ import annotations

from ..errors import ManifestError, did_you_mean
from .nodes import DatasetNode, Manifests


def check_graph(manifests: Manifests) -> None:
    nodes = manifests.nodes
    for node in manifests.datasets():
        for role, target in node.inputs.items():
            if target not in nodes:
                raise ManifestError(f"{node.where}: {node.name}: inputs.{role}: no dataset, "
                                    f"source or file named {target!r}"
                                    f"{did_you_mean(target, nodes)}")
            node.input_kinds[role] = nodes[target].kind
    check_cycles(manifests)
    for job in manifests.jobs.values():
        assert job.spec is not None
        for role, target in job.spec.datasets.items():
            if not isinstance(nodes.get(target), DatasetNode):
                what = f"is a {nodes[target].kind}" if target in nodes else \
                    "is not defined" + did_you_mean(
                        target, [n.name for n in manifests.datasets()])
                raise ManifestError(f"{job.where}: job {job.name}: datasets.{role}: {target!r} "
                                    f"{what}; a training job reads datasets")


def check_cycles(manifests: Manifests) -> None:
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = [*trail[trail.index(name):], name]
            node = manifests.nodes[name]
            raise ManifestError(f"{node.where}: dependency cycle: {' -> '.join(cycle)}")
        state[name] = 1
        node = manifests.nodes[name]
        if isinstance(node, DatasetNode):
            for target in node.inputs.values():
                visit(target, [*trail, name])
        state[name] = 2

    for name in manifests.nodes:
        visit(name, [])
