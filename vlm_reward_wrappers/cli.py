"""The ``vlm-rewards`` command line.

    vlm-rewards tasks                         list the 50 tasks, their goal sentences and splits
    vlm-rewards collect --tasks reach-v3 door-open-v3 --episodes 8 --out data/demo

Each subcommand is a thin layer over the Python API of the same name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from vlm_reward_wrappers.io_utils import CorruptFileError
from vlm_reward_wrappers.rendering import RenderingUnavailableError


def _add_tasks(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list the Meta-World tasks, goal sentences and splits")
    parser.set_defaults(handler=_run_tasks)


def _run_tasks(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.tasks import ML45_TEST, MT10, TASKS

    for task in TASKS.values():
        tags = [tag for tag, members in (("MT10", MT10), ("ML45-test", ML45_TEST)) if task.name in members]
        print(f"{task.name:30s} {task.goal!r:60s} {' '.join(tags)}")


def _add_collect(subparsers: argparse._SubParsersAction) -> None:
    from vlm_reward_wrappers.data import CollectionConfig

    defaults = CollectionConfig(tasks=("reach-v3",))
    parser = subparsers.add_parser("collect", help="record scripted-expert demonstrations into a dataset folder")
    parser.add_argument("--tasks", nargs="+", required=True, help="task names, e.g. reach-v3 door-open-v3 (or MT10, ML45-train)")
    parser.add_argument("--episodes", type=int, default=defaults.episodes_per_task, help="episodes per task")
    parser.add_argument("--out", required=True, help="dataset folder")
    parser.add_argument("--noise", type=float, nargs="+", default=list(defaults.noise_levels), help="expert action-noise std levels, cycled over episodes")
    parser.add_argument("--random-share", type=float, default=defaults.random_share, help="share of episodes with random actions")
    parser.add_argument("--camera", default=defaults.camera)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--steps-after-success", type=int, default=defaults.steps_after_success, help="steps kept after the first success (-1: run to --max-steps)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--append", action="store_true", help="add to a dataset of another config (same camera and size)")
    group.add_argument("--overwrite", action="store_true", help="delete the dataset in --out first")
    parser.set_defaults(handler=_run_collect)


def expand_task_names(names: Sequence[str]) -> tuple[str, ...]:
    """Task names with the split names MT10, ML45-train and ML45-test expanded."""
    from vlm_reward_wrappers.tasks import ML45_TEST, ML45_TRAIN, MT10

    splits = {"MT10": MT10, "ML45-train": ML45_TRAIN, "ML45-test": ML45_TEST}
    expanded: list[str] = []
    for name in names:
        expanded.extend(splits.get(name, (name,)))
    return tuple(dict.fromkeys(expanded))


def _run_collect(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.data import CollectionConfig, collect

    config = CollectionConfig(
        tasks=expand_task_names(args.tasks),
        episodes_per_task=args.episodes,
        noise_levels=tuple(args.noise),
        random_share=args.random_share,
        camera=args.camera,
        image_size=args.image_size,
        max_steps=args.max_steps,
        steps_after_success=None if args.steps_after_success < 0 else args.steps_after_success,
        seed=args.seed,
    )
    mode = "append" if args.append else "overwrite" if args.overwrite else "resume"
    dataset = collect(config, args.out, mode=mode, workers=args.workers)
    print(dataset)


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (_add_tasks, _add_collect)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vlm-rewards``."""
    parser = argparse.ArgumentParser(prog="vlm-rewards", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vlm-rewards`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError, CorruptFileError, RenderingUnavailableError) as error:
        print(f"vlm-rewards {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vlm-rewards {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
