"""The core commands' handlers: each gets the opened Registry and the parsed arguments
and returns the exit code (`init` needs no registry: it makes one)."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from ..errors import BadInputError, RegistryError, SourceError
from . import audit
from .diff import diff
from .display import table, write_csv
from .report import report


def resolve(reg: Any, args: argparse.Namespace) -> int:
    names = list(args.names)
    if args.tags:
        names += [n for n in reg.names(args.tags.split(",")) if reg.manifests.get(n).kind ==
                  "dataset"]
    if not names:
        raise BadInputError("resolve: name at least one dataset, or --tags")
    if args.dry_run and args.repair:
        raise BadInputError("resolve: --repair rebuilds what is damaged; it has no --dry-run "
                            "(run `registry verify NAME` to see what is damaged)")
    if args.dry_run:
        todo = reg.resolver.missing(names)
        for node in todo:
            print(f"would build {node.name}  ({node.recipe}, key {reg.key(node.name)})")
        if not todo:
            print("nothing to build")
        return 0
    for name in names:
        resolved = reg.resolve(name, jobs=args.jobs, executor=args.executor,
                               repair=args.repair)
        print(resolved.uri)  # the folder itself in a local store; `registry path` downloads
        for pulled, cache in resolved.pulled.items():
            print(f"{pulled}: pulled from cache {cache} (not built here)", file=sys.stderr)
        if resolved.marker.skipped:
            print(f"{name}: skipped {resolved.marker.skipped} image(s) it could not use "
                  f"(on_error: skip); list them with: registry sql \"SELECT member, reason "
                  f"FROM skipped WHERE key = '{resolved.key}'\"", file=sys.stderr)
        for damaged, problems in resolved.repaired.items():
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            print(f"repaired {damaged}: {problems[0]}{more}", file=sys.stderr)
        if args.repair and not resolved.repaired and not resolved.built_now:
            print(f"{name}: verified, nothing to repair", file=sys.stderr)
    reg.save_key_cache(names)
    return 0


def push(reg: Any, args: argparse.Namespace) -> int:
    for name, done in zip(dict.fromkeys(args.names), reg.push(args.names, args.to),
                          strict=True):
        _say_transfer(name, done, "pushed to", "already in")
    return 0


def pull(reg: Any, args: argparse.Namespace) -> int:
    for name, done in zip(dict.fromkeys(args.names), reg.pull(args.names, args.source),
                          strict=True):
        _say_transfer(name, done, "pulled from", "already in")
    reg.save_key_cache(list(args.names))
    return 0


def _say_transfer(name: str, done: Any, moved: str, present: str) -> None:
    if done.present:
        print(f"{name}: {present} {done.dest} (key {done.key}), nothing copied")
        return
    where = done.dest if moved.startswith("pushed") else done.source
    resumed = f", {done.kept} already there kept" if done.kept else ""
    files = f"{done.copied} file{'' if done.copied == 1 else 's'}"
    print(f"{name}: {moved} {where} (key {done.key}): {files}, "
          f"{done.copied_bytes} bytes copied{resumed}, each xxh3 verified")


def path(reg: Any, args: argparse.Namespace) -> int:
    print(reg.built(args.name).path)
    reg.save_key_cache([args.name])
    return 0


def list_(reg: Any, args: argparse.Namespace) -> int:
    rows = []
    for name in reg.names(args.tags.split(",") if args.tags else None):
        node = reg.manifests.get(name)
        what = node.recipe if node.kind == "dataset" else getattr(node, "layout", "file")
        rows.append((name, node.kind, what, reg.status(name), ",".join(node.tags)))
    table(["name", "kind", "recipe/layout", "status", "tags"], rows)
    for name, *_ in (r for r in rows if r[3] == "damaged"):
        try:
            reg.resolver.marker(name)
        except RegistryError as exc:
            print(f"registry: {exc}", file=sys.stderr)
    return 0


def show(reg: Any, args: argparse.Namespace) -> int:
    node = reg.manifests.get(args.name)
    info: dict[str, Any] = {"name": node.name, "kind": node.kind, "defined": node.where,
                            "description": node.description, "tags": list(node.tags),
                            "status": reg.status(node.name)}
    info |= _card_info(reg.manifests, node)
    with contextlib.suppress(SourceError):  # registry.lock's where a source is not set here
        info["key"] = reg.key(node.name)
    if node.kind == "dataset":
        info |= {"recipe": node.recipe, "params": node.params.model_dump(mode="json"),
                 "inputs": node.inputs}
        if info["status"] == "built":
            built = reg.built(node.name)
            info |= {"uri": built.uri, "digest": built.digest, "files": built.marker.files,
                     "bytes": built.marker.bytes, "skipped": built.marker.skipped,
                     "synthetic": built.marker.synthetic}
    elif node.kind == "source":
        info["layout"] = node.layout
        if reg.resolver.is_set(node.name) and "key" in info:
            src = reg.resolver.source_info(node.name)
            info |= {"location": src.location, "images": src.files, "synthetic": src.synthetic}
        elif "key" in info:
            locked = reg.resolver.lock.sources[node.name]
            info |= {"location": None, "images": locked.files, "bytes": locked.bytes,
                     "locked": reg.lock_path}
    print(json.dumps(info, indent=2))
    return 0


def _card_info(manifests: Any, node: Any) -> dict[str, Any]:
    """A node's card and, for a dataset, the cards of the sources it is made from (their
    terms bind it too)."""
    info: dict[str, Any] = {"card": dict(node.card)}
    if node.kind == "dataset":
        upstream: dict[str, Any] = {}
        todo = list(node.inputs.values())
        while todo:
            dep = manifests.get(todo.pop())
            if dep.kind == "dataset":
                todo += dep.inputs.values()
            elif dep.card and dep.name not in upstream:
                upstream[dep.name] = dict(dep.card)
        if upstream:
            info["source_cards"] = dict(sorted(upstream.items()))
    return info


def lineage(reg: Any, args: argparse.Namespace) -> int:
    def walk(node: Any, prefix: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└── " if last else "├── ")
        role = f"{node.role}: " if node.role else ""
        key = node.key[:16] if node.key else "-"
        print(f"{prefix}{branch}{role}{node.name}  [{node.kind}, {node.status}]  key {key}  "
              f"{node.detail}")
        child_prefix = prefix + ("" if top else ("    " if last else "│   "))
        for i, child in enumerate(node.children):
            walk(child, child_prefix, i == len(node.children) - 1, False)

    walk(reg.lineage(args.name), "", True, True)
    return 0


def verify(reg: Any, args: argparse.Namespace) -> int:
    from ..api import raise_on_problems

    report = reg.verify(args.names or None)
    raise_on_problems(report)
    print(f"verified {len(report)} artifact(s): all files match their records")
    return 0


def sql(reg: Any, args: argparse.Namespace) -> int:
    if args.timeout < 0:
        raise BadInputError(f"--timeout {args.timeout:g}: give seconds >= 0 (0: no limit)")
    result = reg.sql(args.query, timeout=args.timeout)
    if args.format == "json":
        print(json.dumps([dict(zip(result.columns, r, strict=True)) for r in result.rows],
                         default=str, indent=1))
    elif args.format == "csv":
        write_csv(result.columns, result.rows)
    else:
        table(result.columns, result.rows)
    return 0


def source(reg: Any, args: argparse.Namespace) -> int:
    if args.action == "set":
        info = reg.set_source(args.name, args.location)
        _print_source(info)
    elif args.action == "check":
        info = reg.check_source(args.name, md5=args.md5, force=args.force)
        _print_source(info)
        if args.md5:
            node = reg.manifests.get(args.name)
            if info.synthetic:
                print(f"md5 {info.md5}: synthetic stand-in, the published md5 does not apply")
            elif node.expect.md5:
                print(f"md5 {info.md5}: matches the published checksum")
            else:
                print(f"md5 {info.md5} (no published checksum declared in {node.where})")
    else:
        locations = reg.resolver.locations.load()
        names = [args.name] if args.name else [n.name for n in reg.manifests.nodes.values()
                                               if n.kind == "source"]
        rows = []
        for name in sorted(names):
            status = reg.status(name)
            try:  # the lock's where the source is not set here
                fp = reg.key(name)[:16]
            except SourceError:
                fp = "-"
            rows.append((name, reg.manifests.get(name).layout, locations.get(name, "(unset)"),
                         fp, status))
        table(["name", "layout", "location", "fingerprint", "status"], rows)
    return 0


def _print_source(info: Any) -> None:
    """What the source holds, split by split, and what its layout left out, by name."""
    kind = "SYNTHETIC stand-in" if info.synthetic else "data"
    print(f"{info.name}: {info.files} images, {info.bytes} bytes of {info.layout} {kind} at "
          f"{info.location}")
    for split, (images, classes) in info.splits.items():
        print(f"  split {split}: {images} images, "
              + (f"{classes} classes" if classes else "unlabelled"))
    if info.left_out:
        first = ", ".join(info.left_out_first)
        more = f", ... ({info.left_out - len(info.left_out_first)} more)" \
            if info.left_out > len(info.left_out_first) else ""
        print(f"  left out by layout {info.layout}: {info.left_out} file(s) that are not its "
              f"images (hidden, OS litter, not an image, or unlisted): {first}{more}")
    print(f"fingerprint {info.fingerprint}")


def job(reg: Any, args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = [(j.name, ", ".join(f"{r}={d}" for r, d in j.spec.datasets.items()),
                 ", ".join(j.templates), j.where) for j in reg.manifests.jobs.values()]
        table(["job", "datasets", "flavors", "defined"], sorted(rows))
        return 0
    if args.action == "render":
        rendered = reg.render_job(args.name, args.flavor, cluster_store=args.cluster_store,
                                  check=args.check)
        if args.output:
            with open(args.output, "w", encoding="utf-8") as f:
                f.write(rendered.text)
        else:
            sys.stdout.write(rendered.text)
    else:
        rendered, output = reg.submit_job(args.name, args.flavor,
                                          cluster_store=args.cluster_store)
        sys.stdout.write(output)
    for i in rendered.inputs:
        if not i.built_here:
            print(f"note: {i.name} ({i.role}) is not built in this registry; the job expects it "
                  f"at {i.location} (the `build` flavor builds it on the cluster)",
                  file=sys.stderr)
    print(f"run {rendered.run_id} recorded ({args.action}, flavor {rendered.flavor})",
          file=sys.stderr)
    return 0


def gc(reg: Any, args: argparse.Namespace) -> int:
    if args.keep_days < 0:
        raise BadInputError(f"gc: --keep-days {args.keep_days:g}: a number of days, 0 or more")
    report = reg.gc(dry_run=True, keep_days=args.keep_days)
    if args.dry_run:
        if args.json:
            print(json.dumps(report.as_dict(), indent=1))
        else:
            _gc_listing(report, "would remove", kept=True)
        return 0
    if report.deleted and not args.yes:
        total = sum(a.bytes for a in report.deleted)
        what = f"{len(report.deleted)} artifact(s), {_size(total)}"
        if not sys.stdin.isatty():
            raise BadInputError(f"gc: would delete {what}; not on a terminal to ask: pass "
                                "--yes to delete them (see them with: registry gc --dry-run); "
                                "nothing was deleted")
        _gc_listing(report, "would remove", kept=False)
        try:
            answer = input(f"delete {what}? [y/N] ").strip().lower()
        except EOFError:  # end of input at the prompt: a no
            answer = ""
        if answer not in ("y", "yes"):
            print("nothing deleted")
            return 0
    agreed = {a.key for a in report.deleted}
    report = reg.gc(keep_days=args.keep_days, only=agreed)
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))
    else:
        _gc_listing(report, "removed", kept=False)
    return 0


def _gc_listing(report: Any, verb: str, *, kept: bool) -> None:
    for path in report.staging:
        staging = {".staging", "staging"} & set(path.replace(os.sep, "/").split("/"))
        print(f"{verb} {'staging' if staging else 'unmarked folder'} {path}")
    for a in report.deleted:
        print(f"{verb} {a.name or '(unnamed)'}  key {a.key}  {_size(a.bytes)}")
    for key in report.busy:
        print(f"kept {key}: a build on this machine holds it")
    if kept:
        for a in report.kept:
            print(f"keep {a.name or '(unnamed)'}  key {a.key}  {_size(a.bytes)}: "
                  + "; ".join(a.why))
    if report.unknown:
        print("kept every artifact: keys unknown (sources unset, not in registry.lock) for "
              + ", ".join(report.unknown[:5]))
    if not (report.staging or report.deleted):
        print(f"nothing to remove ({len(report.kept)} artifact(s) kept)")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def pin(reg: Any, args: argparse.Namespace) -> int:
    for name, key in reg.pin(args.names):
        print(f"pinned {name} (key {key})")
    return 0


def unpin(reg: Any, args: argparse.Namespace) -> int:
    for name, key in reg.unpin(args.names):
        print(f"unpinned {name or '(unnamed)'} (key {key})")
    return 0


def lock(reg: Any, args: argparse.Namespace) -> int:
    wrote, left_out = reg.write_lock()
    print(f"{'wrote' if wrote else 'unchanged:'} {reg.lock_path} "
          f"({len(reg.resolver.lock.sources)} source(s), "
          f"{len(reg.resolver.lock.datasets)} dataset(s))")
    for name, why in sorted(left_out.items()):
        print(f"not locked: {name}: {why}", file=sys.stderr)
    return 0


def catalog(reg: Any, args: argparse.Namespace) -> int:
    print(f"re-indexed {reg.rebuild_catalog()} artifact(s) into {reg.catalog.path}")
    return 0


def init(args: argparse.Namespace) -> int:
    from ..init import example, init_project

    folder = args.dir or args.root
    written = init_project(folder, args.example)
    chosen = example(args.example)
    print(f"wrote a new project in {os.path.abspath(folder)} ({args.example}: "
          f"{chosen.description}):")
    for path in written:
        print(f"  {path}")
    first = chosen.first_source
    print(f"next: point a source at your data (registry source set {first} PATH), then "
          "registry list")
    return 0


HANDLERS = {"resolve": resolve, "path": path, "list": list_, "show": show, "lineage": lineage,
            "report": report,
            "verify": verify, "sql": sql, "source": source, "job": job, "gc": gc, "pin": pin,
            "unpin": unpin,
            "catalog": catalog, "push": push, "pull": pull, "lock": lock, "diff": diff,
            "audit": audit.audit}
