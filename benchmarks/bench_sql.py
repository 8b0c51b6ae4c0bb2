"""Provenance queries at catalog scale: whole-process `registry sql` against its floor.

    python benchmarks/bench_sql.py [--rows 600000] [--runs 15] [--smoke]

Builds a throwaway registry over the shipped manifests (one small calibration variant
built from a synthetic val set, so `show`, `lineage`, `path` and `list` have something to
say), then pads its catalog with --rows synthetic `files` rows of 100 train-shaped
artifacts, inserted directly. Then measures whole processes (the median of --runs, the
commands taken in turn each round):

- the floor: a bare `python -c "import duckdb; duckdb.connect(path, read_only=True)
  .execute(q).fetchall()"` process running the same query on the same catalog;
- `registry sql` of a query that scans every file row (which artifacts hold a member)
  and of one that reads one small table (what a per-query cost growing with the catalog,
  e.g. copying it, shows on), each against its bare process;
- `registry show`, `lineage`, `path`, `list` of the built variant, each against a bare
  process running the catalog query that says the same (its node and artifact rows; its
  input edges, recursively; every node with its artifact; its artifact's location). They
  replay the answers their first run remembered (cli/answers.py), as every run after it
  does while nothing they depend on changed; `show (full path)` times that first run
  (the replay switched off: what the first `show` after a change costs), its `main()`
  reading the process's command line as the `registry` script does.

Every process, the bare ones too, runs as an installed package does: with its bytecode
compiled once (kept under the throwaway folder, not in the tree), even where
PYTHONDONTWRITEBYTECODE is set (DuckDB's pip-installed `.pyc` would otherwise meet our
modules compiled from source each run); the first round, untimed, compiles it.

`--rows 5000000` is the device's size (16 cores). --smoke runs each measurement once on
2,000 rows: it checks that the script works, so its exit status ignores the targets.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILT = "imagenet-calibration-first.1"
SCAN = ("SELECT a.name, f.path FROM files f JOIN artifacts a USING (key) "
        "WHERE f.member = 'n00000007/n00000007_777.JPEG' ORDER BY a.name")
SMALL = "SELECT name, files FROM artifacts ORDER BY name LIMIT 5"
# what each provenance command says, as the query a bare DuckDB process would run for it
EQUIVALENT = {
    "show": f"SELECT * FROM nodes n LEFT JOIN artifacts a USING (key) WHERE n.name = '{BUILT}'",
    "lineage": f"""WITH RECURSIVE up(key, name) AS (
                       SELECT key, name FROM nodes WHERE name = '{BUILT}'
                       UNION ALL SELECT e.input_key, e.input_name FROM edges e JOIN up USING (key))
                   SELECT up.name, up.key, a.uri FROM up LEFT JOIN artifacts a USING (key)""",
    "path": f"SELECT uri FROM artifacts WHERE name = '{BUILT}'",
    "list": "SELECT n.name, n.kind, n.recipe, a.key IS NOT NULL AS built, n.tags "
            "FROM nodes n LEFT JOIN artifacts a USING (key) ORDER BY n.name",
}
FULL_PATH = """import sys
from dataset_registry import cli
try:
    from dataset_registry.cli import views
    views.replay = lambda args: False  # see cli/answers.py
except ImportError:  # older code: every run took the full path
    pass
sys.exit(cli.main())  # its command line, as `registry` runs it"""
RATIO_TARGET = 1.5  # whole process / the bare process on the same query
SECONDS_TARGET = 0.3  # at 5M rows on 16 cores
SMOKE = {"runs": 1, "rows": 2_000}


def as_installed(work: Path) -> dict[str, str]:
    """The environment of a process run as an installed package runs: bytecode written once
    (under `work`, not in the tree) and read after, even where PYTHONDONTWRITEBYTECODE is set."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    return env


def medians(commands: dict[str, list[str]], cwd: Path, runs: int,
            env: dict[str, str]) -> dict[str, float]:
    """The median seconds of each whole process, the commands taken in turn each round, so
    a change in the machine's load meets them all alike."""
    times: dict[str, list[float]] = {what: [] for what in commands}
    for _ in range(runs):
        for what, cmd in commands.items():
            start = time.perf_counter()
            subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, env=env)
            times[what].append(time.perf_counter() - start)
    return {what: statistics.median(seconds) for what, seconds in times.items()}


def pad_catalog(catalog: str, rows: int, source: str) -> None:
    """`rows` train-shaped file rows of 100 artifacts, straight into the catalog."""
    import duckdb

    con = duckdb.connect(catalog)
    try:
        con.execute("""INSERT INTO artifacts (key, name, recipe, version, store, uri, digest,
                           files, bytes, skipped, synthetic, built_at)
                       SELECT 'pad' || lpad(CAST(a AS VARCHAR), 61, '0'), 'bench-pad-' || a,
                           'select', 1, 'bench', 'bench://' || a, md5(CAST(a AS VARCHAR)),
                           0, 0, 0, true, now() FROM range(100) t(a)""")
        con.execute(f"""INSERT INTO files (key, path, size, xxh3, label, source, member, class)
            SELECT 'pad' || lpad(CAST(i % 100 AS VARCHAR), 61, '0'),
                'train/' || lpad(CAST(i % 1000 AS VARCHAR), 4, '0') || '/' || i || '.JPEG',
                100000 + i % 50000, md5(CAST(i AS VARCHAR))[:16], CAST(i % 1000 AS INTEGER),
                ?, 'n' || lpad(CAST(i % 1000 AS VARCHAR), 8, '0') || '/n'
                    || lpad(CAST(i % 1000 AS VARCHAR), 8, '0') || '_' || i || '.JPEG',
                CAST(i % 1000 AS VARCHAR)
            FROM range({rows}) t(i)""", [source])
        con.execute("CHECKPOINT")
    finally:
        con.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=600_000)
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--smoke", action="store_true", help="every measurement, tiny and once")
    args = ap.parse_args()
    if args.smoke:
        vars(args).update(SMOKE)

    work = Path(tempfile.mkdtemp(prefix="bench-sql-"))
    try:
        return measure(work, args)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def measure(work: Path, args: argparse.Namespace) -> int:
    from dataset_registry import Registry
    from dataset_registry.domains.imagenet.synth import SynthSpec, synthesize

    shutil.copytree(REPO / "manifests", work / "manifests")
    made = synthesize(str(work / "synth"), SynthSpec(val_images=20, width=32, height=24,
                                                     kaggle=False, train_classes=1,
                                                     train_per_class=1), jobs=1)
    reg = Registry.open(str(work))
    reg.set_source("imagenet2012-val", made["imagenet-val"])
    reg.resolve(BUILT, jobs=1)
    reg.save_key_cache()
    pad_catalog(reg.catalog.path, args.rows, reg.key("imagenet2012-val"))
    catalog = reg.catalog.path
    size_mb = os.path.getsize(catalog) / 1e6

    registry = [sys.executable, "-m", "dataset_registry.cli"]

    def bare(query: str) -> list[str]:
        return [sys.executable, "-c", "import duckdb, sys; duckdb.connect(sys.argv[1], "
                "read_only=True).execute(sys.argv[2]).fetchall()", catalog, query]

    commands = {
        "bare duckdb process, scan query": bare(SCAN),
        "registry sql, scan query": [*registry, "sql", SCAN],
        "bare duckdb process, small query": bare(SMALL),
        "registry sql, small query": [*registry, "sql", SMALL],
    }
    for command, query in EQUIVALENT.items():
        line = [command] if command == "list" else [command, BUILT]
        commands[f"bare duckdb process, {command} query"] = bare(query)
        commands[f"registry {' '.join(line)}"] = [*registry, *line]
    # the first run after a change, which takes the full path: the replay switched off
    # in this process alone (forgetting the answers would send the others there too)
    full = "registry show (full path)"
    commands[full] = [sys.executable, "-c", FULL_PATH, "show", BUILT]
    env = as_installed(work)
    # warm the OS caches, compile the bytecode (and check each one works)
    for cmd in commands.values():
        subprocess.run(cmd, cwd=work, check=True, stdout=subprocess.DEVNULL, env=env)
    took = medians(commands, work, args.runs, env)
    floor_scan = took["bare duckdb process, scan query"]
    floor_small = took["bare duckdb process, small query"]
    print(f"{args.rows:,} file rows in the catalog ({size_mb:.1f} MB), {os.cpu_count()} cores "
          f"(load average {os.getloadavg()[0]:.1f}), median of {args.runs} runs, "
          "bytecode compiled")
    print(f"{'what':48s} {'seconds':>8s} {'x floor':>8s}")
    ratios = {}
    for what, seconds in took.items():
        command = what.split(",")[-1].split()[0] if what.startswith("bare") else \
            what.split()[1]
        floor = took[f"bare duckdb process, {command} query"] if command in EQUIVALENT \
            else floor_scan if "scan" in what else floor_small
        ratios[what] = seconds / floor
        print(f"{what:48s} {seconds:8.3f} {seconds / floor:8.2f}")
    ok = True
    for what in ("registry sql, scan query", "registry sql, small query",
                 *(w for w in took if w.split()[0] == "registry" and w.split()[1] in EQUIVALENT
                   and w != full)):
        good = ratios[what] <= RATIO_TARGET
        ok &= good
        print(f"ratio: {what} / bare {ratios[what]:.2f} "
              f"(target <= {RATIO_TARGET}: {'yes' if good else 'NO'})")
    print(f"ratio: {full} / bare {ratios[full]:.2f} (the first run after a change: no target)")
    for label, prefix in (("registry sql", "registry sql"), ("registry command", "registry")):
        what = max((w for w in took if w.startswith(prefix) and w != full),
                   key=took.__getitem__)
        print(f"slowest {label}: {took[what]:.3f} s, {what.removeprefix('registry ')} "
              f"(target <= {SECONDS_TARGET} s at 5,000,000 rows on 16 cores)")
    return 0 if args.smoke or ok else 1


if __name__ == "__main__":
    sys.exit(main())
