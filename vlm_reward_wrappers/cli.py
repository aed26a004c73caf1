"""The ``vlm-rewards`` command line.

    vlm-rewards tasks                         list the 50 tasks, their goal sentences and splits
    vlm-rewards collect --tasks reach-v3 door-open-v3 --episodes 8 --out data/demo
    vlm-rewards pretrain-backbone --data data/demo     train and cache the offline default backbone
    vlm-rewards train --objective triplet --data data/demo --out runs/triplet
    vlm-rewards evaluate --ckpt runs/triplet --data data/eval --out runs/eval/triplet
    vlm-rewards benchmark                               the whole study, offline (preset quick: ~15 min on 2 CPUs)

Each subcommand is a thin layer over the Python API of the same name.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from vlm_reward_wrappers.io_utils import CorruptFileError
from vlm_reward_wrappers.rendering import RenderingUnavailableError

if TYPE_CHECKING:
    from vlm_reward_wrappers.models import BackboneSpec

_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, CorruptFileError, RenderingUnavailableError)


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
    parser.add_argument(
        "--tasks", nargs="+", required=True, help="task names, e.g. reach-v3 door-open-v3 (or MT10, ML45-train)"
    )
    parser.add_argument("--episodes", type=int, default=defaults.episodes_per_task, help="episodes per task")
    parser.add_argument("--out", required=True, help="dataset folder")
    parser.add_argument(
        "--noise",
        type=float,
        nargs="+",
        default=list(defaults.noise_levels),
        help="expert action-noise std levels, cycled over episodes",
    )
    parser.add_argument(
        "--random-share", type=float, default=defaults.random_share, help="share of episodes with random actions"
    )
    parser.add_argument("--camera", default=defaults.camera)
    parser.add_argument("--image-size", type=int, default=defaults.image_size)
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument(
        "--steps-after-success",
        type=int,
        default=defaults.steps_after_success,
        help="steps kept after the first success (-1: run to --max-steps)",
    )
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--append", action="store_true", help="add to a dataset of another config (same camera and size)"
    )
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


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    from vlm_reward_wrappers.training.pretrain import PretrainConfig

    defaults = PretrainConfig()
    parser = subparsers.add_parser(
        "pretrain-backbone", help="train the offline default backbone (CLIP loss on frames and task sentences)"
    )
    parser.add_argument("--data", required=True, help="dataset folder (its ML45 test tasks are never used)")
    parser.add_argument("--out", default=None, help="backbone folder (default: the cache, $VLM_REWARDS_CACHE)")
    parser.add_argument("--tasks", nargs="+", default=None, help="restrict to these training tasks")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size)
    parser.add_argument("--lr", type=float, default=defaults.learning_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.training.pretrain import PretrainConfig, pretrain_backbone

    config = PretrainConfig(max_steps=args.max_steps, batch_size=args.batch_size, learning_rate=args.lr, seed=args.seed)
    tasks = expand_task_names(args.tasks) if args.tasks else None
    spec = pretrain_backbone(args.data, args.out, tasks=tasks, config=config)
    print(f"backbone {spec.model} weights: {spec.pretrained}")


def _parse_option(text: str) -> tuple[str, object]:
    import json

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options are KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    from vlm_reward_wrappers.objectives import available_objectives
    from vlm_reward_wrappers.training.trainer import TrainConfig

    defaults = TrainConfig()
    parser = subparsers.add_parser("train", help="train a reward model with one objective and write its checkpoint")
    parser.add_argument("--objective", required=True, help=f"one of: {', '.join(available_objectives())}")
    parser.add_argument("--data", required=True, help="dataset folder from `vlm-rewards collect`")
    parser.add_argument("--out", required=True, help="checkpoint folder (re-running resumes it)")
    parser.add_argument("--max-steps", type=int, default=defaults.max_steps)
    parser.add_argument("--finetune", default=defaults.finetune, choices=["lora", "heads", "full"])
    parser.add_argument("--lora-rank", type=int, default=defaults.lora_rank)
    parser.add_argument("--batch-size", type=int, default=defaults.batch_size, help="trajectories per step")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default by --finetune)")
    parser.add_argument("--eval-every", type=int, default=defaults.eval_every)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument(
        "--tasks", nargs="+", default=None, help="training tasks (default: all in the data but the ML45 test tasks)"
    )
    parser.add_argument(
        "--option",
        type=_parse_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="objective hyper-parameter, e.g. margin=0.2 or goal=language",
    )
    parser.add_argument(
        "--backbone",
        default=None,
        help="open_clip model name (default: the package's own backbone, pretrained on --data)",
    )
    parser.add_argument(
        "--backbone-weights", default=None, help="open_clip pretrained tag or local weights file for --backbone"
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="discard a run already in --out")
    parser.set_defaults(handler=_run_train)


def backbone_from_args(model: str | None, weights: str | None) -> BackboneSpec | None:
    """A BackboneSpec from --backbone/--backbone-weights, or None for the default backbone."""
    from pathlib import Path

    from vlm_reward_wrappers.models import BackboneSpec

    if model is None:
        if weights is not None:
            raise ValueError("--backbone-weights needs --backbone (the open_clip model name the weights belong to)")
        return None
    if weights is not None and Path(weights).exists():
        return BackboneSpec.from_file(model, weights)
    return BackboneSpec(model=model, pretrained=weights)


def _run_train(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.training.trainer import TrainConfig, train

    config = TrainConfig(
        objective=args.objective,
        objective_options=dict(args.option),
        finetune=args.finetune,
        lora_rank=args.lora_rank,
        batch_size=args.batch_size,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        eval_every=args.eval_every,
        seed=args.seed,
        tasks=expand_task_names(args.tasks) if args.tasks else None,
    )
    backbone = backbone_from_args(args.backbone, args.backbone_weights)
    model = train(config, args.data, args.out, backbone=backbone, device=args.device, overwrite=args.overwrite)
    summary = model.config.training
    print(f"{args.out}: {args.objective}, best step {summary['best_step']}, validation {summary['best_validation']}")


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a dataset with a checkpoint and compare with the ground truth"
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint folder")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="folder for metrics.json, predictions.csv, report.md and plots")
    parser.add_argument("--tasks", nargs="+", default=None, help="only these tasks")
    parser.add_argument("--delta", type=float, default=0.5, help="ground-truth reward differences up to this are ties")
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair sampling and bootstrap")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.evaluation.evaluate import evaluate, markdown_table

    tasks = expand_task_names(args.tasks) if args.tasks else None
    metrics = evaluate(args.ckpt, args.data, args.out, tasks=tasks, delta=args.delta, seed=args.seed)
    print(markdown_table(metrics))
    print(f"written to {args.out}")


def _add_benchmark(subparsers: argparse._SubParsersAction) -> None:
    from vlm_reward_wrappers.evaluation.benchmark import PRESETS

    parser = subparsers.add_parser(
        "benchmark", help="collect, pretrain, train every objective, evaluate: the study in one command"
    )
    parser.add_argument(
        "--preset",
        default="quick",
        choices=list(PRESETS),
        help="; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/<preset>); re-running reuses finished stages"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="override the preset's seeds")
    parser.add_argument("--backbone", default=None, help="open_clip model name instead of the preset's backbone")
    parser.add_argument(
        "--backbone-weights", default=None, help="open_clip pretrained tag or local weights file for --backbone"
    )
    parser.set_defaults(handler=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> None:
    from dataclasses import replace

    from vlm_reward_wrappers.evaluation.benchmark import PRESETS, run_benchmark

    preset = PRESETS[args.preset]
    if args.seeds:
        preset = replace(preset, seeds=tuple(args.seeds))
    backbone = backbone_from_args(args.backbone, args.backbone_weights)
    run_benchmark(preset, args.out or f"runs/{preset.name}", backbone=backbone)


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_tasks,
    _add_collect,
    _add_pretrain,
    _add_train,
    _add_evaluate,
    _add_benchmark,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vlm-rewards``."""
    parser = argparse.ArgumentParser(prog="vlm-rewards", description=__doc__.split("\n\n")[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


def _model_errors() -> tuple[type[BaseException], ...]:
    """Errors with messages meant for the user, from the torch-side modules (imported only if loaded)."""
    errors: list[type[BaseException]] = []
    if "vlm_reward_wrappers.models.reward_model" in sys.modules:
        from vlm_reward_wrappers.models import BackboneLoadError, CheckpointError

        errors += [CheckpointError, BackboneLoadError]
    if "vlm_reward_wrappers.training.trainer" in sys.modules:
        from vlm_reward_wrappers.training.trainer import NonFiniteLossError

        errors.append(NonFiniteLossError)
    return tuple(errors)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vlm-rewards`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except _ERRORS + _model_errors() as error:
        print(f"vlm-rewards {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vlm-rewards {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
