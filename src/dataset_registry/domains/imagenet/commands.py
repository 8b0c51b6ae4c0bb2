"""ImageNet's `registry` commands: synth, eval, demo (entry-point group
`dataset_registry.commands` in this package's pyproject.toml).

`registry --help` imports this module for the help lines, so it imports nothing
heavy: synth, evaluate and demo (and the Registry) are imported when a command runs.
"""

from __future__ import annotations

import argparse
import os

from ...cli.command import Command
from ...cli.parser import workers
from ...errors import BadInputError


class Synth(Command):
    help = "write a synthetic ImageNet-shaped source"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("what", choices=["imagenet"], help="the dataset to imitate")
        parser.add_argument("dir", help="the folder to write into")
        parser.add_argument("--val-images", type=int, default=50_000,
                            help="val images, the first N of the real names (default 50000)")
        parser.add_argument("--train-classes", type=int, default=10,
                            help="train classes (default 10)")
        parser.add_argument("--train-per-class", type=int, default=10,
                            help="train images per class (default 10)")
        parser.add_argument("--wnids",
                            help="comma-separated train classes (instead of --train-classes)")
        parser.add_argument("--size", default="64x48", help="nominal WxH (default 64x48)")
        parser.add_argument("--seed", type=int, default=0, help="the pixels' seed (default 0)")
        parser.add_argument("--no-kaggle", action="store_true",
                            help="skip the Kaggle folder layout")
        parser.add_argument("--jobs", "-j", type=workers, default=os.cpu_count() or 1,
                            help="worker processes (default: all cores)")

    def run(self, args: argparse.Namespace) -> int:
        from ...cli.display import progress_factory
        from ...core.progress import bar
        from .synth import SynthSpec, image_count, synthesize

        try:
            width, height = (int(v) for v in args.size.lower().split("x"))
        except ValueError:
            raise BadInputError(f"--size {args.size!r}: expected WIDTHxHEIGHT, e.g. 64x48"
                                ) from None
        if not (0 < args.val_images <= 50_000):
            raise BadInputError("--val-images must be between 1 and 50000")
        spec = SynthSpec(val_images=args.val_images, train_classes=args.train_classes,
                         train_per_class=args.train_per_class, width=width, height=height,
                         seed=args.seed, kaggle=not args.no_kaggle,
                         wnids=tuple(args.wnids.split(",")) if args.wnids else ())
        with bar(progress_factory(), f"synthesizing into {args.dir}", image_count(spec),
                 unit="images") as advance:
            made = synthesize(args.dir, spec, jobs=args.jobs, progress=advance)
        for layout, location in made.items():
            print(f"{layout}\t{location}")
        print("SYNTHETIC data: stand-ins with real names and labels, not ImageNet images.")
        return 0


class Eval(Command):
    help = "top-1..5 classification error of val predictions"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("predictions", help="predictions: a line per val image in the order "
                            "of val/files.txt")
        parser.add_argument("--dataset", required=True,
                            help="a built downscale dataset with a val split")
        parser.add_argument("--format", choices=["auto", "labels", "devkit"], default="auto",
                            help="labels: up to 5 labels a line, best first; devkit: "
                            "5 numbers a guess (label xmin ymin xmax ymax); auto (default): "
                            "told from the lines")

    def run(self, args: argparse.Namespace) -> int:
        from ...cli import open_registry
        from .evaluate import evaluate_dataset

        dataset = open_registry(args).built(args.dataset).path
        errors, n, k = evaluate_dataset(dataset, args.predictions, args.format)
        print(f"# {n} val images, {k} classes; random guessing scores 1 - k/{k}")
        print("# guesses vs cls-only error")
        for guesses, error in enumerate(errors, 1):
            print(f"{guesses:10d} {error:10.4f}")
        return 0


class Demo(Command):
    help = "synthesize ImageNet, resolve calibration sets, query"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--val-images", type=int, default=50_000,
                            help="val images to synthesize, 500 to 50000 (default 50000)")
        parser.add_argument("--jobs", "-j", type=workers,
                            help="worker processes (default: all cores)")

    def run(self, args: argparse.Namespace) -> int:
        from ...cli import open_registry
        from .demo import check_val_images, demo_root, run_demo

        check_val_images(args.val_images)  # before an example project is written
        args.root = demo_root(args.root, args.manifests)
        return run_demo(open_registry(args), val_images=args.val_images, jobs=args.jobs)
