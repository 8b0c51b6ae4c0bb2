"""Planning a `select` of a whole large source, against making its members' refs.

    python benchmarks/bench_plan.py [--members 256200] [--repeat 3] [--smoke]

A tar of `--members` tiny files in 200 class folders (image-folder), indexed untimed; a
`select` of all of it (unchecked: the plan decodes nothing). In one process, best of
`--repeat`, side by side:

floor    every member's `MemberRef` made a batch at a time (`list(members)`): what a
         plan must hand its tasks at the least
select   `Select.plan` of the whole source, as a build makes it
before   the plan as it was, for a whole source without a list (`old_plan` below, its
         steps as they were: a ref made per member by index, each name checked to be in
         the set and looked up again by name)

It prints seconds, members a second and the ratios, and whether both plans give the same
tasks. --smoke does it at 5,000 members (past a batch of refs, 4,096): it checks that the
script works.
"""

from __future__ import annotations

import argparse
import posixpath
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def old_plan(params: Any, inputs: Any) -> list[list[Any]]:
    """Select.plan before session 16, for a whole source without a list or labels (the
    same tasks; its refusals, of no concern here, left out)."""
    from dataset_registry.recipes.naming import record_names
    from dataset_registry.recipes.select import _CHUNK, pick_split

    images = pick_split(inputs.images["images"], params.split, "images")
    count = min(params.first or len(images), len(images))
    refs = [images[i] for i in range(count)]
    names = [r.name for r in refs]
    for name in names:
        if name not in images:
            raise AssertionError(name)
    unique = list(dict.fromkeys(names))
    bases = [posixpath.basename(n) for n in unique]
    whole = record_names(unique, bases, unique, "file", images.where)[1]
    todo = [(images.get(n), None, n if whole else posixpath.basename(n)) for n in unique]
    return [todo[i:i + _CHUNK] for i in range(0, len(todo), _CHUNK)]


def best(repeat: int, run: Any) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=256_200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    members = 5_000 if args.smoke else args.members
    repeat = 1 if args.smoke else args.repeat

    from dataset_registry.recipes.select import Select, pick_split
    from dataset_registry.testing.sources import open_project, write_tar

    work = Path(tempfile.mkdtemp(prefix="bench-plan-"))
    try:
        tar = write_tar(work / "images.tar",
                        {f"c{k % 200:03d}/{k:07d}.jpg": b"x" for k in range(members)})
        reg = open_project(work / "project", {"images": tar}, [
            {"name": "all", "recipe": "select", "inputs": {"images": "images"},
             "params": {"split": "train", "validate_images": False}}])
        node = reg.manifests.get("all")
        inputs, _, _ = reg.resolver.inputs(node, {})  # the source indexed here, untimed
        images = pick_split(inputs.images["images"], node.params.split, "images")
        floor, refs = best(repeat, lambda: list(images))
        ours, plan = best(repeat, lambda: Select.plan(node.params, inputs))
        before, old = best(repeat, lambda: old_plan(node.params, inputs))
        same = [list(task) for task in plan] == old and \
            [ref for task in old for ref, _, _ in task] == refs
        print(f"## plan: select of {len(images):,} members (image-folder tar), "
              f"best of {repeat}")
        print(f"{'method':48s} {'seconds':>8s} {'members/s':>10s}")
        for label, t in (("floor: every member's ref, a batch at a time", floor),
                         ("select's plan", ours), ("select's plan before", before)):
            print(f"{label:48s} {t:8.3f} {len(images) / t:10,.0f}")
        print(f"ratio floor / select's plan  {floor / ours:.2f}")
        print(f"ratio before / now           {before / ours:.2f}")
        print(f"the same tasks: {'yes' if same else 'NO'}")
        return 0 if same else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
