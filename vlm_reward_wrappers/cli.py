"""The ``vlm-rewards`` command line.

    vlm-rewards tasks                         list the 50 tasks, their goal sentences and splits
    vlm-rewards collect --tasks reach-v3 door-open-v3 --episodes-per-task 8 --out data/demo
    vlm-rewards pretrain-backbone --data data/demo     train and cache the offline default backbone
    vlm-rewards train --objective triplet --data data/demo --out runs/triplet
    vlm-rewards evaluate --ckpt runs/triplet --data data/eval --out runs/eval/triplet
    vlm-rewards evaluate --ckpt runs/triplet --data data/eval --demonstrations data/demos --out runs/eval/demos
    vlm-rewards adapt --ckpt runs/triplet --data data/demos --demonstrations 1 --out runs/adapted
    vlm-rewards pack runs/triplet                      make an old checkpoint folder complete (portable)
    vlm-rewards benchmark                               the whole study, offline (preset quick: ~16 min on 2 CPUs)
    vlm-rewards rl                                      SAC agents on learned, sparse and ground-truth rewards

Each subcommand is a thin layer over the Python API of the same name. Its
flags are the fields of the config dataclass it builds (CollectionConfig,
PretrainConfig, TrainConfig, Preset), derived by
:mod:`vlm_reward_wrappers.config_cli`: names, types, defaults, choices and help
come from the dataclasses, so the command line cannot drift from the API.
"""

from __future__ import annotations

import argparse
import errno
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import get_args

from vlm_reward_wrappers.config_cli import add_config_arguments, config_from_args
from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.data.storage import OutputMode
from vlm_reward_wrappers.evaluation import evaluate
from vlm_reward_wrappers.evaluation.report import PROBE_LEGEND, gate_summary, markdown_table, probe_table
from vlm_reward_wrappers.io_utils import CorruptFileError
from vlm_reward_wrappers.metrics import DEFAULT_DELTA
from vlm_reward_wrappers.models import BackboneLoadError, BackboneSpec, CheckpointError
from vlm_reward_wrappers.models.checkpoint import pack_checkpoint
from vlm_reward_wrappers.models.demonstration import dataset_demonstrations
from vlm_reward_wrappers.rendering import RenderingUnavailableError
from vlm_reward_wrappers.rl import RL_PRESETS, RL_PRESETS_HELP, RLConfig, run_sweep, write_rl_report
from vlm_reward_wrappers.study import PRESETS, Preset, run_benchmark
from vlm_reward_wrappers.tasks import ML45_TEST, MT10, TASKS, expand_tasks
from vlm_reward_wrappers.training.adapt import AdaptConfig, adapt
from vlm_reward_wrappers.training.pretrain import PretrainConfig, default_backbone, pretrain_backbone
from vlm_reward_wrappers.training.trainer import NonFiniteLossError, TrainConfig, train
from vlm_reward_wrappers.version import __version__

_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    FileNotFoundError,
    CorruptFileError,
    RenderingUnavailableError,
    CheckpointError,
    BackboneLoadError,
    NonFiniteLossError,
)


def os_error_message(error: OSError) -> str:
    """An OS error in one line, with what to do; what was saved before it stays (re-running resumes).

    >>> os_error_message(OSError(errno.EROFS, "Read-only file system", "runs/x"))
    'Read-only file system: runs/x. That file system is read-only: choose another --out.'
    """
    where = f": {error.filename}" if error.filename else ""
    advice = {
        errno.ENOSPC: "Free some space (or choose another --out) and re-run the same command: it resumes from the "
        "last save.",
        errno.EDQUOT: "Free some of your quota (or choose another --out) and re-run the same command.",
        errno.EROFS: "That file system is read-only: choose another --out.",
        errno.EACCES: "You may not write there: choose another --out, or change the folder's permissions.",
        errno.EPERM: "You may not write there: choose another --out, or change the folder's permissions.",
    }.get(error.errno or 0, "Re-run the same command to resume from the last save.")
    return f"{error.strerror or error}{where}. {advice}"


def _add_tasks(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tasks", help="list the Meta-World tasks, goal sentences and splits")
    parser.set_defaults(handler=_run_tasks)


def _run_tasks(args: argparse.Namespace) -> None:
    for task in TASKS.values():
        tags = [tag for tag, members in (("MT10", MT10), ("ML45-test", ML45_TEST)) if task.name in members]
        print(f"{task.name:30s} {task.goal!r:60s} {' '.join(tags)}")


def _add_collect(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("collect", help="record scripted-expert demonstrations into a dataset folder")
    add_config_arguments(parser, CollectionConfig)
    parser.add_argument("--out", required=True, help="dataset folder (re-running the same command resumes it)")
    parser.add_argument(
        "--mode",
        default="resume",
        choices=get_args(OutputMode),
        help="resume: the folder is empty or holds this config; append: add this collection to a dataset of the "
        "same camera and size; overwrite: delete the dataset in --out first (default: resume)",
    )
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: up to 2)")
    parser.set_defaults(handler=_run_collect)


def _run_collect(args: argparse.Namespace) -> None:
    dataset = collect(config_from_args(CollectionConfig, args), args.out, mode=args.mode, workers=args.workers)
    print(dataset)


def _add_pretrain(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pretrain-backbone", help="train the offline default backbone (CLIP loss on frames and task sentences)"
    )
    add_config_arguments(parser, PretrainConfig)
    parser.add_argument("--data", required=True, help="dataset folder (its ML45 test tasks are never used)")
    parser.add_argument("--out", default=None, help="backbone folder (default: the cache, $VLM_REWARDS_CACHE)")
    parser.add_argument("--tasks", nargs="+", default=None, help="restrict to these training tasks")
    parser.set_defaults(handler=_run_pretrain)


def _run_pretrain(args: argparse.Namespace) -> None:
    tasks = expand_tasks(args.tasks) if args.tasks else None
    spec = pretrain_backbone(args.data, args.out, tasks=tasks, config=config_from_args(PretrainConfig, args))
    print(f"backbone {spec.model} weights: {spec.pretrained}")


def _add_backbone_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--backbone", default=None, help=f"open_clip model name (default: {default})")
    parser.add_argument(
        "--backbone-weights", default=None, help="open_clip pretrained tag or local weights file for --backbone"
    )


def backbone_from_args(model: str | None, weights: str | None) -> BackboneSpec | None:
    """A BackboneSpec from --backbone/--backbone-weights, or None for the default backbone."""
    if model is None:
        if weights is not None:
            raise ValueError("--backbone-weights needs --backbone (the open_clip model name the weights belong to)")
        return None
    if weights is not None and Path(weights).exists():
        return BackboneSpec.from_file(model, weights)
    return BackboneSpec(model=model, pretrained=weights)


def _add_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("train", help="train a reward model with one objective and write its checkpoint")
    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--data", required=True, help="dataset folder from `vlm-rewards collect`")
    parser.add_argument("--out", required=True, help="checkpoint folder (re-running resumes it)")
    _add_backbone_arguments(parser, "the package's own backbone, pretrained on --data and cached")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument("--overwrite", action="store_true", help="discard a run already in --out")
    parser.set_defaults(handler=_run_train)


def _run_train(args: argparse.Namespace) -> None:
    config = config_from_args(TrainConfig, args)
    backbone = backbone_from_args(args.backbone, args.backbone_weights)
    if backbone is None:
        print("backbone: the package's own, pretrained on the training tasks of --data (cached after the first time)")
        backbone = default_backbone(args.data, tasks=config.tasks)
    model = train(config, args.data, args.out, backbone=backbone, device=args.device, overwrite=args.overwrite)
    summary = model.config.training
    print(f"{args.out}: {config.objective}, best step {summary['best_step']}, validation {summary['best_validation']}")


def _add_evaluate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score a dataset with a checkpoint and compare with the ground truth"
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint folder")
    parser.add_argument("--data", required=True, help="dataset folder")
    parser.add_argument("--out", required=True, help="folder for metrics.json, predictions.csv, report.md and plots")
    parser.add_argument("--tasks", nargs="+", default=None, help="only these tasks")
    parser.add_argument(
        "--delta",
        type=float,
        default=DEFAULT_DELTA,
        help=f"ground-truth reward differences up to this are ties (default: {DEFAULT_DELTA})",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the pair sampling and bootstrap (default: 0)")
    parser.add_argument(
        "--demonstrations",
        default=None,
        help="a dataset folder of demonstrations (another collection than --data): its tasks are also scored "
        "with the rewards of their demonstrations (progress along them, their goal image)",
    )
    parser.add_argument("--demonstrations-per-task", type=int, default=1, help="demonstrations per task (default: 1)")
    parser.set_defaults(handler=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> None:
    tasks = expand_tasks(args.tasks) if args.tasks else None
    demonstrations = None
    if args.demonstrations:
        demo_data = DemoDataset(args.demonstrations)
        wanted = [task for task in demo_data.tasks if tasks is None or task in tasks]
        demonstrations = dataset_demonstrations(demo_data, wanted, args.demonstrations_per_task)
    metrics = evaluate(
        args.ckpt, args.data, args.out, tasks=tasks, delta=args.delta, seed=args.seed, demonstrations=demonstrations
    )
    print(markdown_table(metrics))
    if metrics["off_expert"]:
        probe = metrics["off_expert"]
        print(
            f"\noff the expert path (native reward)\n\n{probe_table(probe)}\n\n{PROBE_LEGEND}\n\n{gate_summary(probe)}"
        )
    print(f"written to {args.out}")


def _add_adapt(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "adapt", help="finetune a checkpoint on a few demonstrations of new tasks, with its own objective"
    )
    add_config_arguments(parser, AdaptConfig)
    parser.add_argument("--ckpt", required=True, help="the checkpoint to adapt")
    parser.add_argument("--data", required=True, help="dataset folder holding the demonstrations of the new tasks")
    parser.add_argument("--out", required=True, help="the adapted checkpoint's folder (re-running resumes it)")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.set_defaults(handler=_run_adapt)


def _run_adapt(args: argparse.Namespace) -> None:
    model = adapt(args.ckpt, args.data, args.out, config_from_args(AdaptConfig, args), device=args.device)
    print(f"{args.out}: {args.ckpt} adapted to {', '.join(model.config.training['tasks'])}")


def _add_pack(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "pack", help="make a checkpoint folder complete (backbone weights, model card), or a release to publish"
    )
    parser.add_argument("ckpt", help="checkpoint folder")
    parser.add_argument(
        "--out",
        default=None,
        help="write a release here: the checkpoint's files and a model card, no training state (default: complete "
        "the folder in place, keeping its training state)",
    )
    parser.add_argument(
        "--backbone-file",
        default=None,
        help="the backbone weights of a checkpoint written by an older version (which named them by absolute "
        "path); their checksum must match the recorded one",
    )
    parser.set_defaults(handler=_run_pack)


def _run_pack(args: argparse.Namespace) -> None:
    folder = pack_checkpoint(args.ckpt, args.out, backbone_file=args.backbone_file)
    size = sum(item.stat().st_size for item in folder.iterdir() if item.is_file())
    print(f"{folder}: complete checkpoint, {size / 1e6:.1f} MB")


def _add_benchmark(subparsers: argparse._SubParsersAction) -> None:
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
    overrides = parser.add_argument_group("overrides of the preset's settings (default: the preset's)")
    add_config_arguments(overrides, Preset, exclude=("name", "description", "backbone", "pretrain"), overrides=True)
    _add_backbone_arguments(parser, "the preset's")
    parser.set_defaults(handler=_run_benchmark)


def _run_benchmark(args: argparse.Namespace) -> None:
    preset = config_from_args(Preset, args, base=PRESETS[args.preset])
    backbone = backbone_from_args(args.backbone, args.backbone_weights)
    run_benchmark(preset, args.out or f"runs/{preset.name}", backbone=backbone)


def _add_rl(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "rl", help="train SAC agents on learned, sparse and ground-truth rewards; report success curves"
    )
    parser.add_argument("--preset", default="quick", choices=list(RL_PRESETS), help=RL_PRESETS_HELP)
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/rl-<preset>); re-running resumes and skips"
    )
    parser.add_argument(
        "--mode",
        default="resume",
        choices=["resume", "overwrite"],
        help="resume (default): a run folder that holds a run of other settings (checkpoint weights, budget, "
        "agent settings) is refused; overwrite: such runs are deleted and run again",
    )
    overrides = parser.add_argument_group("overrides of the preset's settings (default: the preset's)")
    add_config_arguments(overrides, RLConfig, overrides=True)
    parser.set_defaults(handler=_run_rl)


def _run_rl(args: argparse.Namespace) -> None:
    config = config_from_args(RLConfig, args, base=RL_PRESETS[args.preset])
    out = args.out or f"runs/rl-{args.preset}"
    run_sweep(config, out, overwrite=args.mode == "overwrite")
    print(write_rl_report(out))


_COMMANDS: tuple[Callable[[argparse._SubParsersAction], None], ...] = (
    _add_tasks,
    _add_collect,
    _add_pretrain,
    _add_train,
    _add_evaluate,
    _add_adapt,
    _add_pack,
    _add_benchmark,
    _add_rl,
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``vlm-rewards``."""
    parser = argparse.ArgumentParser(prog="vlm-rewards", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _COMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vlm-rewards`` console script."""
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except _ERRORS as error:
        print(f"vlm-rewards {args.command}: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a read-only or full disk, a folder without permission
        print(f"vlm-rewards {args.command}: error: {os_error_message(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vlm-rewards {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return 0
