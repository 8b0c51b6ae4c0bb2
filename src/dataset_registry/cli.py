"""The `registry` command. Exit codes: 0 ok, 1 failure, 2 bad input.

argparse rather than a framework: `registry resolve` of a built variant must
start, answer and exit in well under 0.3 s, so heavy imports stay lazy.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from .errors import BadInputError, RegistryError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="registry", description=__doc__.splitlines()[0])
    _where_options(p, {"root": ".", "manifests": None, "store": None, "catalog": None,
                       "storage_option": None})
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("init", help="start a project: registry.toml, manifests/, .gitignore")
    c.add_argument("dir", nargs="?", help="the project folder (default: --root, i.e. .)")
    c.add_argument("--example", default="image-folder", choices=["image-folder", "imagenet"],
                   help="image-folder (default): a commented manifest for your own images "
                   "as class folders; imagenet: the shipped ImageNet manifests")
    c = sub.add_parser("list", help="variants with their status")
    c.add_argument("--tags", help="comma-separated tags, all must match")
    c = sub.add_parser("show", help="spec, key, inputs, status and location")
    c.add_argument("name")
    c = sub.add_parser("resolve", help="build what is missing; print the locations")
    c.add_argument("names", nargs="*")
    c.add_argument("--tags", help="resolve every dataset with all these tags (CK style)")
    c.add_argument("--jobs", "-j", type=int, help="worker processes (default: all cores)")
    c.add_argument("--executor", help="where tasks run: local (default, a process pool), "
                   "dask://HOST:PORT (a Dask scheduler), dask://local (a Dask LocalCluster)")
    c.add_argument("--dry-run", action="store_true", help="show what would be built")
    c.add_argument("--repair", action="store_true", help="re-verify the datasets and their "
                   "inputs; rebuild in place those damaged")
    c = sub.add_parser("path", help="print the location of a built dataset")
    c.add_argument("name")
    c = sub.add_parser("lineage", help="the tree of inputs down to the sources")
    c.add_argument("name")
    c = sub.add_parser("verify", help="re-hash artifacts against their records")
    c.add_argument("names", nargs="*")
    c = sub.add_parser("sql", help="read-only SQL over the catalog")
    c.add_argument("query")
    c.add_argument("--format", choices=["table", "csv", "json"], default="table")
    c.add_argument("--timeout", type=float, default=60.0, metavar="S",
                   help="stop the query after S seconds (default 60; 0: no limit)")
    c = sub.add_parser("source", help="point sources at your data, show and check them")
    ssub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    s = ssub.add_parser("set", help="set a source's location")
    s.add_argument("name")
    s.add_argument("location")
    s = ssub.add_parser("show", help="sources, locations and fingerprints")
    s.add_argument("name", nargs="?")
    s = ssub.add_parser("check", help="count files; --md5 verifies the published checksum")
    s.add_argument("name")
    s.add_argument("--md5", action="store_true")
    s.add_argument("--force", action="store_true", help="re-read even if unchanged")
    c = sub.add_parser("synth", help="write a synthetic ImageNet-shaped source")
    c.add_argument("what", choices=["imagenet"])
    c.add_argument("dir")
    c.add_argument("--val-images", type=int, default=50_000)
    c.add_argument("--train-classes", type=int, default=10)
    c.add_argument("--train-per-class", type=int, default=10)
    c.add_argument("--wnids", help="comma-separated train classes (instead of --train-classes)")
    c.add_argument("--size", default="64x48", help="nominal WxH (default 64x48)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--no-kaggle", action="store_true", help="skip the Kaggle folder layout")
    c.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 1)
    c = sub.add_parser("eval", help="top-1..5 classification error of val predictions")
    c.add_argument("predictions")
    c.add_argument("--dataset", required=True, help="a built downscale dataset with a val split")
    c.add_argument("--format", choices=["auto", "labels", "devkit"], default="auto")
    c = sub.add_parser("job", help="GPU job specs of training manifests: list, render, submit")
    jsub = c.add_subparsers(dest="action", required=True, metavar="ACTION")
    jsub.add_parser("list", help="training jobs, their datasets and flavors")
    for action, text in (("render", "print the job spec (YAML) with dataset locations and keys"),
                         ("submit", "render, then pipe to `kubectl apply -f -`")):
        s = jsub.add_parser(action, help=text)
        s.add_argument("name")
        s.add_argument("--flavor", help="which template (default: the job's first)")
        s.add_argument("--cluster-store",
                       help="the store as the cluster sees it (default: the job's volume.store)")
        if action == "render":
            s.add_argument("--output", "-o", help="write to this file instead of stdout")
            s.add_argument("--check", action="store_true",
                           help="validate against the Kubernetes/Kubeflow models ([k8s] extra)")
    c = sub.add_parser("gc", help="remove crashed builds and unreferenced artifacts")
    c.add_argument("--dry-run", action="store_true")
    c = sub.add_parser("catalog", help="catalog maintenance")
    c.add_argument("action", choices=["rebuild"],
                   help="rebuild: re-index the store into a new catalog, renamed over the old "
                   "(a corrupt one is moved aside)")
    c = sub.add_parser("demo", help="synthesize ImageNet, resolve calibration sets, query")
    c.add_argument("--val-images", type=int, default=50_000)
    c.add_argument("--jobs", "-j", type=int)
    for command in _all_subparsers(sub):  # the same options after the command, too
        _where_options(command, None)
    return p


def _where_options(p: argparse.ArgumentParser, defaults: dict[str, Any] | None) -> None:
    def default(name: str) -> Any:
        return argparse.SUPPRESS if defaults is None else defaults[name]

    p.add_argument("--root", default=default("root"), help="registry folder (default: .)")
    p.add_argument("--manifests", default=default("manifests"),
                   help="manifests folder (default: ROOT/manifests)")
    p.add_argument("--store", default=default("store"),
                   help="store: a folder (default: ROOT/registry) or s3://bucket/prefix")
    p.add_argument("--catalog", default=default("catalog"),
                   help="catalog file (default: ROOT/catalog.duckdb)")
    p.add_argument("--storage-option", action="append", metavar="NAME=VALUE",
                   default=default("storage_option"),
                   help="an fsspec/s3fs option for s3:// stores and sources, e.g. "
                   "endpoint_url=http://127.0.0.1:9000 (repeatable; credentials are best left "
                   "to the AWS environment)")


def _all_subparsers(sub: Any) -> list[argparse.ArgumentParser]:
    found = []
    for parser in sub.choices.values():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        found += _all_subparsers(nested[0]) if nested else [parser]
    return found


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived: unwound like Ctrl-C (staging removed, workers stopped)."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if _fast_path(args):
            return 0
        return _dispatch(args) or 0
    except RegistryError as exc:
        print(f"registry: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("registry: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("registry: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # Last resort: the stores and Output already name what failed (StorageError); a
        # stray one still gets one line, not a traceback.
        print(f"registry: error: {_os_error(exc)}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGTERM, previous)


def _os_error(exc: OSError) -> str:
    where = f"{exc.filename}: " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def _fast_path(args: argparse.Namespace) -> bool:
    """Answer `resolve`/`path` of built datasets from the key cache, without manifests."""
    if args.command not in ("resolve", "path") or getattr(args, "dry_run", False) or \
            getattr(args, "tags", None) or getattr(args, "executor", None) or \
            getattr(args, "repair", False):
        return False
    from . import keycache
    from .paths import locations
    from .stores import LocalStore

    where = locations(args.root, manifests=args.manifests, store=args.store, catalog=args.catalog)
    if "://" in where.store:
        return False
    names = args.names if args.command == "resolve" else [args.name]
    keys = keycache.lookup(where.state, where.manifests, names) if names else None
    if keys is None:
        return False
    store = LocalStore(where.store)
    try:  # each marker parsed and checked: a damaged one goes the normal path, which says so
        if any(store.marker(keys[n]) is None for n in names):
            return False
    except RegistryError:
        return False
    print("\n".join(store.local_path(keys[n]) for n in names))
    return True


def _registry(args: argparse.Namespace) -> Any:
    from .api import Registry
    from .remote import parse_options

    return Registry.open(args.root, manifests=args.manifests, store=args.store,
                         catalog=args.catalog,
                         storage_options=parse_options(args.storage_option or []),
                         progress=_progress_factory())


def _dispatch(args: argparse.Namespace) -> int | None:
    if args.command == "synth":
        return _synth(args)
    if args.command == "init":
        return _init(args)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.root, val_images=args.val_images, jobs=args.jobs)
    reg = _registry(args)
    handler = globals()[f"_cmd_{args.command}"]
    return handler(reg, args)


def _cmd_resolve(reg: Any, args: argparse.Namespace) -> int:
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
        for damaged, problems in resolved.repaired.items():
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            print(f"repaired {damaged}: {problems[0]}{more}", file=sys.stderr)
        if args.repair and not resolved.repaired and not resolved.built_now:
            print(f"{name}: verified, nothing to repair", file=sys.stderr)
    reg.save_key_cache(names)
    return 0


def _cmd_path(reg: Any, args: argparse.Namespace) -> int:
    print(reg.built(args.name).path)
    reg.save_key_cache([args.name])
    return 0


def _cmd_list(reg: Any, args: argparse.Namespace) -> int:
    rows = []
    for name in reg.names(args.tags.split(",") if args.tags else None):
        node = reg.manifests.get(name)
        what = node.recipe if node.kind == "dataset" else getattr(node, "layout", "file")
        rows.append((name, node.kind, what, reg.status(name), ",".join(node.tags)))
    _table(["name", "kind", "recipe/layout", "status", "tags"], rows)
    for name, *_ in (r for r in rows if r[3] == "damaged"):
        try:
            reg.resolver.marker(name)
        except RegistryError as exc:
            print(f"registry: {exc}", file=sys.stderr)
    return 0


def _cmd_show(reg: Any, args: argparse.Namespace) -> int:
    node = reg.manifests.get(args.name)
    info: dict[str, Any] = {"name": node.name, "kind": node.kind, "defined": node.where,
                            "description": node.description, "tags": list(node.tags),
                            "status": reg.status(node.name)}
    info |= _card_info(reg.manifests, node)
    if info["status"] != "source unset":
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
        if info["status"] != "source unset":
            src = reg.resolver.source_info(node.name)
            info |= {"location": src.location, "images": src.files, "synthetic": src.synthetic}
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


def _cmd_lineage(reg: Any, args: argparse.Namespace) -> int:
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


def _cmd_verify(reg: Any, args: argparse.Namespace) -> int:
    from .api import raise_on_problems

    report = reg.verify(args.names or None)
    raise_on_problems(report)
    print(f"verified {len(report)} artifact(s): all files match their records")
    return 0


def _cmd_sql(reg: Any, args: argparse.Namespace) -> int:
    if args.timeout < 0:
        raise BadInputError(f"--timeout {args.timeout:g}: give seconds >= 0 (0: no limit)")
    result = reg.sql(args.query, timeout=args.timeout)
    if args.format == "json":
        print(json.dumps([dict(zip(result.columns, r, strict=True)) for r in result.rows],
                         default=str, indent=1))
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout)
        writer.writerow(result.columns)
        writer.writerows(result.rows)
    else:
        _table(result.columns, result.rows)
    return 0


def _cmd_source(reg: Any, args: argparse.Namespace) -> int:
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
            fp = reg.key(name)[:16] if status != "source unset" else "-"
            rows.append((name, reg.manifests.get(name).layout, locations.get(name, "(unset)"),
                         fp, status))
        _table(["name", "layout", "location", "fingerprint", "status"], rows)
    return 0


def _print_source(info: Any) -> None:
    kind = "SYNTHETIC stand-in" if info.synthetic else "data"
    print(f"{info.name}: {info.files} images, {info.bytes} bytes of {info.layout} {kind} at "
          f"{info.location}\nfingerprint {info.fingerprint}")


def _cmd_eval(reg: Any, args: argparse.Namespace) -> int:
    from .evaluate import evaluate_dataset

    errors, n, k = evaluate_dataset(reg.built(args.dataset).path, args.predictions, args.format)
    print(f"# {n} val images, {k} classes; random guessing scores 1 - k/{k}")
    print("# guesses vs cls-only error")
    for guesses, error in enumerate(errors, 1):
        print(f"{guesses:10d} {error:10.4f}")
    return 0


def _cmd_job(reg: Any, args: argparse.Namespace) -> int:
    if args.action == "list":
        rows = [(j.name, ", ".join(f"{r}={d}" for r, d in j.spec.datasets.items()),
                 ", ".join(j.templates), j.where) for j in reg.manifests.jobs.values()]
        _table(["job", "datasets", "flavors", "defined"], sorted(rows))
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


def _cmd_gc(reg: Any, args: argparse.Namespace) -> int:
    report = reg.gc(dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in report["staging"]:
        print(f"{verb} staging {path}")
    for key in report["artifacts"]:
        print(f"{verb} unreferenced artifact {key}")
    if report["kept_unknown"]:
        print("kept every artifact: sources unset for " + ", ".join(report["kept_unknown"][:5]))
    if not (report["staging"] or report["artifacts"]):
        print("nothing to remove")
    return 0


def _cmd_catalog(reg: Any, args: argparse.Namespace) -> int:
    print(f"re-indexed {reg.rebuild_catalog()} artifact(s) into {reg.catalog.path}")
    return 0


def _init(args: argparse.Namespace) -> int:
    from .init import init_project

    folder = args.dir or args.root
    written = init_project(folder, args.example)
    print(f"wrote a new project in {os.path.abspath(folder)}:")
    for path in written:
        print(f"  {path}")
    first = "imagenet2012-val" if args.example == "imagenet" else "my-images"
    print(f"next: point a source at your data (registry source set {first} PATH), then "
          "registry list")
    return 0


def _synth(args: argparse.Namespace) -> int:
    from .synth import SynthSpec, synthesize

    try:
        width, height = (int(v) for v in args.size.lower().split("x"))
    except ValueError:
        raise BadInputError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 64x48") from None
    if not (0 < args.val_images <= 50_000):
        raise BadInputError("--val-images must be between 1 and 50000")
    spec = SynthSpec(val_images=args.val_images, train_classes=args.train_classes,
                     train_per_class=args.train_per_class, width=width, height=height,
                     seed=args.seed, kaggle=not args.no_kaggle,
                     wnids=tuple(args.wnids.split(",")) if args.wnids else ())
    made = synthesize(args.dir, spec, jobs=args.jobs)
    for layout, location in made.items():
        print(f"{layout}\t{location}")
    print("SYNTHETIC data: stand-ins with real names and labels, not ImageNet images.")
    return 0


def _table(columns: list[str], rows: list[tuple]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        print("\t".join(columns))
        for row in rows:
            print("\t".join("" if v is None else str(v) for v in row))
        return
    table = Table(*columns)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def _progress_factory() -> Any:
    if not sys.stderr.isatty():
        return None
    from contextlib import contextmanager

    @contextmanager
    def progress(label: str, total: int) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeRemainingColumn,
        )

        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TaskProgressColumn(), TimeRemainingColumn(), transient=True) as bar:
            task = bar.add_task(label, total=total)
            yield lambda n: bar.advance(task, n)

    return progress


if __name__ == "__main__":
    sys.exit(main())
