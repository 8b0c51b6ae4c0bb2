"""The commands that bring datasets here or send them elsewhere: `resolve`, `push`, `pull`.

`resolve NAME` prints the location alone, so `$(registry resolve NAME)` works in a
script; several names (or --tags, which may match any number) print a line each,
`NAME<TAB>STATUS<TAB>LOCATION`, STATUS being `built now`, `found` or `pulled from URL`.
Each line is printed as its dataset is resolved: a later failure leaves the earlier
lines said. With --json, one document at the end: a list of objects (see `outcome`).
This module imports nothing heavy: the CLI's fast path prints through it too.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..errors import BadInputError
from .display import print_json


def outcome(name: str, status: str, key: str, location: str,
            cache: str | None = None) -> dict[str, Any]:
    """What `resolve --json` says of one dataset. `status`: "built" (this command built
    it or what it is made from), "found" (built already) or "pulled" (copied from
    `cache`)."""
    return {"name": name, "status": status, "cache": cache, "key": key,
            "location": location}


def labelled(args: argparse.Namespace) -> bool:
    """Whether resolve names each location: anything but one NAME without --tags (what a
    tag matches may change; the format of the output does not with it)."""
    return len(args.names) != 1 or bool(args.tags)


def say(done: dict[str, Any], args: argparse.Namespace) -> None:
    """One dataset's text line (nothing with --json: the document comes at the end)."""
    if args.json:
        return
    if not labelled(args):
        print(done["location"])
        return
    status = {"built": "built now", "found": "found"}.get(done["status"]) or \
        f"pulled from {done['cache']}"
    print(f"{done['name']}\t{status}\t{done['location']}", flush=True)


def resolve(reg: Any, args: argparse.Namespace) -> int:
    names = list(args.names)
    if args.tags:
        tags = args.tags.split(",")
        tagged = [n for n in reg.names(tags) if reg.manifests.get(n).kind == "dataset"]
        if not tagged:
            known = sorted({t for n in reg.names() for t in reg.manifests.get(n).tags
                            if reg.manifests.get(n).kind == "dataset"})
            raise BadInputError(
                f"resolve --tags {args.tags}: no dataset carries "
                f"{'all of these tags' if len(tags) > 1 else 'this tag'} (" +
                (f"the datasets' tags: {', '.join(known)})" if known else "no dataset has tags)"))
        names += tagged
    if not names:
        raise BadInputError("resolve: name at least one dataset, or --tags")
    if args.dry_run and args.repair:
        raise BadInputError("resolve: --repair rebuilds what is damaged; it has no --dry-run "
                            "(run `registry verify NAME` to see what is damaged)")
    if args.dry_run:
        todo = reg.resolver.missing(names)
        if args.json:
            print_json([{"name": n.name, "recipe": n.recipe, "key": reg.key(n.name)}
                        for n in todo])
            return 0
        for node in todo:
            print(f"would build {node.name}  ({node.recipe}, key {reg.key(node.name)})")
        if not todo:
            print("nothing to build")
        return 0
    results = []
    for name in dict.fromkeys(names):
        resolved = reg.resolve(name, jobs=args.jobs, executor=args.executor,
                               repair=args.repair)
        cache = resolved.pulled.get(name)
        status = "pulled" if cache else "built" if resolved.built_now else "found"
        # the folder itself in a local store; `registry path` downloads from a remote one
        results.append(outcome(name, status, resolved.key, resolved.uri, cache))
        say(results[-1], args)
        for pulled, where in resolved.pulled.items():
            if pulled != name or not labelled(args):  # else the line said so
                print(f"{pulled}: pulled from cache {where} (not built here)",
                      file=sys.stderr)
        if resolved.marker.skipped:
            print(f"{name}: skipped {resolved.marker.skipped} image(s) it could not use "
                  f"(on_error: skip); list them with: registry sql \"SELECT member, reason "
                  f"FROM skipped WHERE key = '{resolved.key}'\"", file=sys.stderr)
        for damaged, problems in resolved.repaired.items():
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            print(f"repaired {damaged}: {problems[0]}{more}", file=sys.stderr)
        if args.repair and not resolved.repaired and not resolved.built_now:
            print(f"{name}: verified, nothing to repair", file=sys.stderr)
    if args.json:
        print_json(results)
    reg.save_key_cache(names)
    return 0


SPARE_CORES = 4  # fewer: the fork server's imports only slow the coordinator's (measured)


def spare_cores(args: argparse.Namespace) -> bool:
    """Whether `resolve` starts its local workers' fork server as the command starts,
    before it knows a build is needed: where cores are to spare, the server imports what
    tasks need (~0.25-0.5 s on a 16-core machine) while this process loads the manifests
    and computes keys, instead of after (the first task waited for it). The workers
    themselves start when a build needs them, as before: after the project's plugins are
    on `sys.path`, which each worker takes as it starts.

    Only the CLI does this (its fast path has already answered every dataset built and
    known, and it runs under a `__main__` guard); a script calling `Registry.resolve`
    without one must keep working where its datasets are built."""
    from ..core.processes import usable_cores

    cores = usable_cores()
    return not args.dry_run and args.executor in (None, "local") and \
        (args.jobs or cores) > 1 and cores >= SPARE_CORES


def fork_server_ahead(args: argparse.Namespace) -> None:
    """The fork server started now, before the registry opens (see `spare_cores`)."""
    if spare_cores(args):
        from ..core.processes import start_early

        start_early()


def push(reg: Any, args: argparse.Namespace) -> int:
    done = reg.push(args.names, args.to)
    _say_transfers(list(dict.fromkeys(args.names)), done, args, "pushed to", "already in")
    return 0


def pull(reg: Any, args: argparse.Namespace) -> int:
    done = reg.pull(args.names, args.source)
    _say_transfers(list(dict.fromkeys(args.names)), done, args, "pulled from", "already in")
    reg.save_key_cache(list(args.names))
    return 0


def _say_transfers(names: list[str], done: list[Any], args: argparse.Namespace, moved: str,
                   present: str) -> None:
    if args.json:
        print_json([{"name": name, "key": d.key, "from": d.source, "to": d.dest,
                     "present": d.present, "files": d.files, "bytes": d.bytes,
                     "copied": d.copied, "copied_bytes": d.copied_bytes, "kept": d.kept}
                    for name, d in zip(names, done, strict=True)])
        return
    for name, d in zip(names, done, strict=True):
        if d.present:
            print(f"{name}: {present} {d.dest} (key {d.key}), nothing copied")
            continue
        where = d.dest if moved.startswith("pushed") else d.source
        resumed = f", {d.kept} already there kept" if d.kept else ""
        files = f"{d.copied} file{'' if d.copied == 1 else 's'}"
        print(f"{name}: {moved} {where} (key {d.key}): {files}, "
              f"{d.copied_bytes} bytes copied{resumed}, each xxh3 verified")
