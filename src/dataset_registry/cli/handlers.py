"""The core commands' handlers: each gets the opened Registry and the parsed arguments
and returns the exit code (`init` needs no registry: it makes one)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from ..errors import BadInputError, SourceError
from . import audit, resolving, views
from .diff import diff
from .display import print_json, table
from .report import report


def path(reg: Any, args: argparse.Namespace) -> int:
    built = reg.built(args.name)
    if args.json:
        print_json({"name": args.name, "key": built.key, "path": built.path})
    else:
        print(built.path)
    reg.save_key_cache([args.name])
    return 0


def verify(reg: Any, args: argparse.Namespace) -> int:
    from ..api import raise_on_problems

    report = reg.verify(args.names or None)
    if args.json:  # the report, damaged or not; then a failure's line on stderr, exit 1
        print_json({"checked": len(report), "ok": not any(report.values()),
                    "problems": {name: problems for name, problems in report.items()
                                 if problems}})
    raise_on_problems(report)
    if not args.json:
        where = "" if args.names else f" in {reg.store.url}"
        print(f"verified {len(report)} artifact(s){where}: all files match their records")
    return 0


def source(reg: Any, args: argparse.Namespace) -> int:
    if args.action == "set":
        info = reg.set_source(args.name, args.location)
        _print_source(info, args.json)
    elif args.action == "check":
        info = reg.check_source(args.name, md5=args.md5, force=args.force)
        _print_source(info, args.json)
        if args.md5 and not args.json:
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
        if args.json:
            print_json([{"name": name, "layout": layout, "location": locations.get(name),
                         "fingerprint": _full_key(reg, name), "status": status}
                        for name, layout, _, _, status in rows])
        else:
            table(["name", "layout", "location", "fingerprint", "status"], rows)
    return 0


def _full_key(reg: Any, name: str) -> str | None:
    try:
        return reg.key(name)  # type: ignore[no-any-return]
    except SourceError:
        return None


def _print_source(info: Any, as_json: bool = False) -> None:
    """What the source holds, split by split, and what its layout left out, by name."""
    if as_json:
        print_json({"name": info.name, "layout": info.layout, "location": info.location,
                    "fingerprint": info.fingerprint, "images": info.files, "bytes": info.bytes,
                    "synthetic": info.synthetic, "splits": {
                        split: {"images": images, "classes": classes}
                        for split, (images, classes) in info.splits.items()},
                    "left_out": info.left_out, "left_out_first": info.left_out_first,
                    "empty_folders": info.empty_folders,
                    "empty_folders_first": info.empty_folders_first,
                    "md5": getattr(info, "md5", None)})
        return
    kind = "SYNTHETIC stand-in" if info.synthetic else "data"
    print(f"{info.name}: {info.files} images, {info.bytes} bytes of {info.layout} {kind} at "
          f"{info.location}")
    for split, (images, classes) in info.splits.items():
        print(f"  split {split}: {images} images, "
              + (f"{classes} classes" if classes else "unlabelled"))
    if info.left_out:
        print(f"  left out by layout {info.layout}: {info.left_out} file(s) that are not its "
              "images (hidden, OS litter, not an image, or unlisted): "
              f"{_first(info.left_out_first, info.left_out)}")
    if info.empty_folders:  # (no image in it: a class folder that makes no class)
        print(f"  left out: {info.empty_folders} empty folder(s) (no file in them, hidden "
              f"ones aside): "
              f"{_first([f + '/' for f in info.empty_folders_first], info.empty_folders)}")
    print(f"fingerprint {info.fingerprint}")


def _first(names: list[str], count: int) -> str:
    """The first few of `count` names, and how many more."""
    more = count - len(names)
    return ", ".join(names) + (f", ... ({more} more)" if more > 0 else "")


def job(reg: Any, args: argparse.Namespace) -> int:
    if args.action == "list":
        jobs = sorted(reg.manifests.jobs.values(), key=lambda j: j.name)
        if args.json:
            print_json([{"name": j.name, "datasets": dict(j.spec.datasets),
                         "flavors": list(j.templates), "defined": j.where} for j in jobs])
            return 0
        rows = [(j.name, ", ".join(f"{r}={d}" for r, d in j.spec.datasets.items()),
                 ", ".join(j.templates), j.where) for j in jobs]
        table(["job", "datasets", "flavors", "defined"], rows)
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
            print_json(report.as_dict())
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
        print_json(report.as_dict())
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
    pinned = reg.pin(args.names)
    if args.json:
        print_json([{"name": name, "key": key} for name, key in pinned])
        return 0
    for name, key in pinned:
        print(f"pinned {name} (key {key})")
    return 0


def unpin(reg: Any, args: argparse.Namespace) -> int:
    unpinned = reg.unpin(args.names)
    if args.json:
        print_json([{"name": name or None, "key": key} for name, key in unpinned])
        return 0
    for name, key in unpinned:
        print(f"unpinned {name or '(unnamed)'} (key {key})")
    return 0


def lock(reg: Any, args: argparse.Namespace) -> int:
    wrote, left_out = reg.write_lock()
    if args.json:
        print_json({"path": reg.lock_path, "changed": wrote,
                    "sources": len(reg.resolver.lock.sources),
                    "datasets": len(reg.resolver.lock.datasets),
                    "not_locked": dict(sorted(left_out.items()))})
        return 0
    print(f"{'wrote' if wrote else 'unchanged:'} {reg.lock_path} "
          f"({len(reg.resolver.lock.sources)} source(s), "
          f"{len(reg.resolver.lock.datasets)} dataset(s))")
    for name, why in sorted(left_out.items()):
        print(f"not locked: {name}: {why}", file=sys.stderr)
    return 0


def catalog(reg: Any, args: argparse.Namespace) -> int:
    indexed = reg.rebuild_catalog()
    if args.json:
        print_json({"indexed": indexed, "catalog": reg.catalog.path})
    else:
        print(f"re-indexed {indexed} artifact(s) into {reg.catalog.path}")
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


HANDLERS = {"resolve": resolving.resolve, "path": path, "list": views.list_,
            "show": views.show, "lineage": views.lineage, "report": report, "verify": verify,
            "source": source, "job": job, "gc": gc, "pin": pin, "unpin": unpin,
            "catalog": catalog, "push": resolving.push, "pull": resolving.pull,
            "lock": lock, "diff": diff, "audit": audit.audit}
