"""`echo`: copies its input images byte for byte, `<split>/<name in the split>`; an image
no decoder reads fails the build or is skipped (`on_error`), as in every shipped recipe.

The smallest real recipe: what the executor suite builds to compare backends, and a
template for a recipe's shape. It is not built in: `with use_echo():` registers it for
the block (workers receive the class itself, so they need no registration).

`faulty` is echo with a bug on request (`with use_faulty():`): its `run` raises a plain
ValueError at the member `fail_on`, or ends its worker process at the member `die_on`, or
its tasks carry a lock (`unpicklable`), so they cannot travel to a worker process; what a
recipe's own failure, or a worker killed, looks like to an executor.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Any, ClassVar

from pydantic import Field

from ..artifact.output import Output
from ..recipes.base import Inputs, InputSpec, Params, Recipe
from ..recipes.imagecheck import OnError, usable
from ..recipes.select import pick_split
from ..sources.members import MemberRef, read_members


class EchoParams(Params):
    split: str = "train"
    chunk: int = Field(default=8, gt=0, le=1_000_000)  # images a task
    validate_images: bool = True  # refuse an image no decoder reads (per on_error)
    on_error: OnError = "fail"


class Echo(Recipe):
    name = "echo"
    version = 1
    Params = EchoParams
    inputs: ClassVar[Mapping[str, InputSpec]] = {
        "images": InputSpec("images", doc="a source or dataset of images"),
    }

    @classmethod
    def plan(cls, params: Any, inputs: Inputs) -> list[list[MemberRef]]:
        images = pick_split(inputs.images["images"], params.split, "images")
        refs = [images[i] for i in range(len(images))]
        return [refs[i:i + params.chunk] for i in range(0, len(refs), params.chunk)]

    @classmethod
    def run(cls, params: Any, task: list[MemberRef], out: Output) -> int:
        for _, ref, data in usable(read_members(task), out, params.on_error,
                                   validate=params.validate_images):
            out.write(f"{params.split}/{ref.name}", data, member=ref.origin,
                      source=ref.source, class_name=ref.label, attrs=ref.attrs)
        return len(task)


def use_echo() -> AbstractContextManager[None]:
    """`with use_echo():` the recipe `echo` is registered within the block only."""
    from .registration import registered

    return registered("recipes", Echo.name, f"{__name__}:Echo")


class FaultyParams(EchoParams):
    fail_on: str = ""  # the member (as the source names it) at which `run` raises
    die_on: str = ""  # the member at which the worker process ends abruptly (killed, OOM)
    unpicklable: bool = False  # each task carries a lock: it cannot reach a worker process


class Faulty(Echo):
    name = "faulty"
    Params = FaultyParams

    @classmethod
    def plan(cls, params: Any, inputs: Inputs) -> list[Any]:
        tasks = super().plan(params, inputs)
        return [(task, threading.Lock()) for task in tasks] if params.unpicklable else tasks

    @classmethod
    def run(cls, params: Any, task: Any, out: Output) -> int:
        refs = task[0] if params.unpicklable else task
        for ref, data in read_members(refs):
            if ref.origin == params.fail_on:
                raise ValueError("faulty by request")
            if ref.origin == params.die_on:
                os._exit(137)  # (as a SIGKILL leaves it: nothing flushed, no result sent)
            out.write(f"{params.split}/{ref.name}", data, member=ref.origin,
                      source=ref.source, class_name=ref.label, attrs=ref.attrs)
        return len(refs)


def use_faulty() -> AbstractContextManager[None]:
    """`with use_faulty():` the recipe `faulty` is registered within the block only."""
    from .registration import registered

    return registered("recipes", Faulty.name, f"{__name__}:Faulty")
