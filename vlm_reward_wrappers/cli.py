"""The ``vlm-rewards`` command line.

    vlm-rewards tasks                         list the 50 tasks, their goal sentences and splits
    vlm-rewards collect --tasks reach-v3 door-open-v3 --episodes-per-task 8 --out data/demo
    vlm-rewards pretrain-backbone --data data/demo     train and cache the offline default backbone
    vlm-rewards train --objective triplet --data data/demo --out runs/triplet
    vlm-rewards evaluate --checkpoint runs/triplet --data data/eval --out runs/eval/triplet
    vlm-rewards evaluate --checkpoint runs/triplet --data data/eval --demo-data data/demos --out runs/eval/demos
    vlm-rewards adapt --checkpoint runs/triplet --data data/demos --demonstrations 1 --out runs/adapted
    vlm-rewards pack runs/triplet --out releases/triplet   a folder to publish (files and model card, no pickle)
    vlm-rewards push runs/triplet your-name/triplet     publish that release on the Hugging Face Hub
    vlm-rewards benchmark                               the whole study, offline (preset quick: ~20 min on 2 CPUs)
    vlm-rewards bundle                                  retrain the reward model that ships with the package
    vlm-rewards rl                                      SAC agents on learned, sparse and ground-truth rewards
    vlm-rewards rl --preset full --dry-run              what a sweep has left, in core-hours; runs nothing
    vlm-rewards rl --preset full --ray-address HOST:6379   the same runs on a Ray cluster (benchmark: the same flags)

Each subcommand is a thin layer over the Python API of the same name. Its
flags are the fields of the config dataclass it builds (CollectionConfig,
PretrainConfig, TrainConfig, Preset, RLConfig), derived by
:mod:`vlm_reward_wrappers.config_cli`: names, types, defaults, choices and help
come from the dataclasses, so the command line cannot drift from the API. One
name per idea across commands: ``--checkpoint`` (a folder or Hub repo id),
``--data`` (a dataset folder), ``--out``, ``--device``, ``--demonstrations`` (a
count). Exit codes: 0 done, 1 a run that failed (the message says what to do),
2 a command line that cannot be run, 130 interrupted.

Only the modules of the command that runs are imported, so ``vlm-rewards
--help`` answers at once.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import errno
import sys
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, get_args

from vlm_reward_wrappers.config_cli import UsageError, add_config_arguments, config_from_args
from vlm_reward_wrappers.extras import MissingExtraError
from vlm_reward_wrappers.version import __version__

if TYPE_CHECKING:
    from vlm_reward_wrappers.models import BackboneSpec

Handler = Callable[[argparse.Namespace], None]


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


def _hidden_alias(parser: argparse.ArgumentParser, action: argparse.Action, *old: str) -> None:
    """Accept the flag names ``old`` (those of version 0.2) for ``action``, without listing them in ``--help``."""
    for name in old:
        parser._option_string_actions[name] = action


def _add_checkpoint(parser: argparse.ArgumentParser, what: str) -> None:
    action = parser.add_argument(
        "--checkpoint", required=True, help=f"{what}: a checkpoint folder, or a Hub repo id user/name[@revision]"
    )
    _hidden_alias(parser, action, "--ckpt")


def _add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when torch sees a GPU)")


def _device(args: argparse.Namespace) -> str:
    """``--device``, checked before any work: a device torch cannot use here is a usage error."""
    from vlm_reward_wrappers.configs import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as error:
        raise UsageError(str(error)) from error


def _tasks(names: Sequence[str] | None) -> tuple[str, ...] | None:
    """``--tasks`` expanded (suite names such as MT10 included); an unknown task is a usage error."""
    from vlm_reward_wrappers.tasks import expand_tasks

    try:
        return expand_tasks(names) if names else None
    except ValueError as error:
        raise UsageError(str(error)) from error


def _tasks_arguments(parser: argparse.ArgumentParser) -> Handler:
    return _run_tasks


def _run_tasks(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.tasks import ML45_TEST, MT10, TASKS

    for task in TASKS.values():
        tags = [tag for tag, members in (("MT10", MT10), ("ML45-test", ML45_TEST)) if task.name in members]
        print(f"{task.name:30s} {task.goal!r:60s} {' '.join(tags)}")


def _collect_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.data import CollectionConfig
    from vlm_reward_wrappers.data.storage import OutputMode

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
    return _run_collect


def _run_collect(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.data import CollectionConfig, collect

    dataset = collect(config_from_args(CollectionConfig, args), args.out, mode=args.mode, workers=args.workers)
    print(dataset)


def _pretrain_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.training.pretrain import PretrainConfig

    add_config_arguments(parser, PretrainConfig)
    parser.add_argument("--data", required=True, help="dataset folder (its ML45 test tasks are never used)")
    parser.add_argument("--out", default=None, help="backbone folder (default: the cache, $VLM_REWARDS_CACHE)")
    parser.add_argument("--tasks", nargs="+", default=None, help="restrict to these training tasks")
    return _run_pretrain


def _run_pretrain(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.training.pretrain import PretrainConfig, pretrain_backbone

    config = config_from_args(PretrainConfig, args)
    spec = pretrain_backbone(args.data, args.out, tasks=_tasks(args.tasks), config=config)
    print(f"backbone {spec.model} weights: {spec.pretrained}")


def _add_backbone_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--backbone", default=None, help=f"open_clip model name (default: {default})")
    parser.add_argument(
        "--backbone-weights", default=None, help="open_clip pretrained tag or local weights file for --backbone"
    )


def backbone_from_args(model: str | None, weights: str | None) -> BackboneSpec | None:
    """A BackboneSpec from --backbone/--backbone-weights, or None for the default backbone.

    >>> backbone_from_args(None, None) is None
    True
    """
    from vlm_reward_wrappers.models import BackboneSpec

    if model is None:
        if weights is not None:
            raise UsageError("--backbone-weights needs --backbone (the open_clip model name the weights belong to)")
        return None
    if weights is not None and Path(weights).exists():
        return BackboneSpec.from_file(model, weights)
    return BackboneSpec(model=model, pretrained=weights)


def _train_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.training.trainer import TrainConfig

    add_config_arguments(parser, TrainConfig)
    parser.add_argument("--data", required=True, help="dataset folder from `vlm-rewards collect`")
    parser.add_argument("--out", required=True, help="checkpoint folder (re-running resumes it)")
    _add_backbone_arguments(parser, "the package's own backbone, pretrained on --data and cached")
    _add_device(parser)
    parser.add_argument("--overwrite", action="store_true", help="discard a run already in --out")
    return _run_train


def _run_train(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.training.pretrain import default_backbone
    from vlm_reward_wrappers.training.trainer import TrainConfig, train

    config = config_from_args(TrainConfig, args)
    device = _device(args)
    backbone = backbone_from_args(args.backbone, args.backbone_weights)
    if backbone is None:
        print("backbone: the package's own, pretrained on the training tasks of --data (cached after the first time)")
        backbone = default_backbone(args.data, tasks=config.tasks)
    model = train(config, args.data, args.out, backbone=backbone, device=device, overwrite=args.overwrite)
    summary = model.config.training
    print(f"{args.out}: {config.objective}, best step {summary['best_step']}, validation {summary['best_validation']}")


def _demonstration_count(text: str) -> int:
    """``--demonstrations``: a count (it named a folder in version 0.2, which now is ``--demo-data``)."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a count: --demonstrations is the number of demonstrations per task; give their "
            "dataset folder with --demo-data"
        )
    return int(text)


def _evaluate_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.metrics import DEFAULT_DELTA

    _add_checkpoint(parser, "the reward model to evaluate")
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
        "--demo-data",
        default=None,
        help="a dataset folder of demonstrations (another collection than --data): its tasks are also scored "
        "with the rewards of their demonstrations (progress along them, their goal image)",
    )
    count = parser.add_argument(
        "--demonstrations",
        type=_demonstration_count,
        default=1,
        help="demonstrations per task taken from --demo-data (default: 1)",
    )
    _hidden_alias(parser, count, "--demonstrations-per-task")
    _add_device(parser)
    return _run_evaluate


def _run_evaluate(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.data import DemoDataset
    from vlm_reward_wrappers.evaluation import evaluate
    from vlm_reward_wrappers.evaluation.report import PROBE_LEGEND, gate_summary, markdown_table, probe_table
    from vlm_reward_wrappers.models.demonstration import dataset_demonstrations

    tasks, device = _tasks(args.tasks), _device(args)
    demonstrations = None
    if args.demo_data:
        demo_data = DemoDataset(args.demo_data)
        wanted = [task for task in demo_data.tasks if tasks is None or task in tasks]
        demonstrations = dataset_demonstrations(demo_data, wanted, args.demonstrations)
    metrics = evaluate(
        args.checkpoint,
        args.data,
        args.out,
        tasks=tasks,
        delta=args.delta,
        seed=args.seed,
        demonstrations=demonstrations,
        device=device,
    )
    print(markdown_table(metrics))
    if metrics["off_expert"]:
        probe = metrics["off_expert"]
        print(
            f"\noff the expert path (native reward)\n\n{probe_table(probe)}\n\n{PROBE_LEGEND}\n\n{gate_summary(probe)}"
        )
    print(f"written to {args.out}")


def _adapt_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.training.adapt import AdaptConfig

    add_config_arguments(parser, AdaptConfig)
    _add_checkpoint(parser, "the reward model to adapt")
    parser.add_argument("--data", required=True, help="dataset folder holding the demonstrations of the new tasks")
    parser.add_argument("--out", required=True, help="the adapted checkpoint's folder (re-running resumes it)")
    _add_device(parser)
    return _run_adapt


def _run_adapt(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.training.adapt import AdaptConfig, adapt

    config, device = config_from_args(AdaptConfig, args), _device(args)
    model = adapt(args.checkpoint, args.data, args.out, config, device=device)
    print(f"{args.out}: {args.checkpoint} adapted to {', '.join(model.config.training['tasks'])}")


def _pack_arguments(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("checkpoint", help="checkpoint folder")
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
    return _run_pack


def _run_pack(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.models.checkpoint import pack_checkpoint

    folder = pack_checkpoint(args.checkpoint, args.out, backbone_file=args.backbone_file)
    size = sum(item.stat().st_size for item in folder.iterdir() if item.is_file())
    print(f"{folder}: complete checkpoint, {size / 1e6:.1f} MB")


def _push_arguments(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument("checkpoint", help="checkpoint folder (its trainer state is never uploaded)")
    parser.add_argument("repo_id", help="Hugging Face Hub repo: user/name, or user/name@branch")
    parser.add_argument("--revision", default=None, help="branch to commit to (default: main)")
    parser.add_argument(
        "--private", action=argparse.BooleanOptionalAction, default=None, help="visibility of a repo it creates"
    )
    parser.add_argument("--commit-message", default=None, help="the commit's message")
    return _run_push


def _run_push(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.models import push_to_hub

    url = push_to_hub(
        args.checkpoint, args.repo_id, revision=args.revision, private=args.private, commit_message=args.commit_message
    )
    print(f"{args.checkpoint} published: {url}")


def _benchmark_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.study import PRESETS, Preset

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
    _add_device(parser)
    _add_execution_arguments(parser)
    parser.add_argument(
        "--costs",
        default=None,
        help="with --dry-run: a JSON file of core-seconds per unit of each stage (collection, backbone, training, "
        "evaluation; default: measured in the quick run on a 2-core x86_64 CPU)",
    )
    return _run_benchmark


def _run_benchmark(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.execution import Backend
    from vlm_reward_wrappers.study import PRESETS, Preset, run_benchmark
    from vlm_reward_wrappers.study.estimate import describe_benchmark_estimate, read_costs

    preset = config_from_args(Preset, args, base=PRESETS[args.preset])
    backbone, device = backbone_from_args(args.backbone, args.backbone_weights), _device(args)
    out = args.out or f"runs/{preset.name}"
    if args.dry_run:
        estimated = dataclasses.replace(preset, backbone=backbone or preset.backbone)
        print(describe_benchmark_estimate(estimated, out, read_costs(args.costs)))
        return
    backend = Backend(ray=args.ray or args.ray_address is not None, address=args.ray_address)
    run_benchmark(preset, out, backbone=backbone, device=device, backend=backend)


def _bundle_arguments(parser: argparse.ArgumentParser) -> Handler:
    parser.add_argument(
        "--out", default="runs/bundled", help="the benchmark's folder (default: runs/bundled); re-running resumes it"
    )
    parser.add_argument(
        "--release",
        default=None,
        help="where the model and its card go (default: the package's bundled_model folder, replaced atomically)",
    )
    _add_device(parser)
    return _run_bundle


def _run_bundle(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT
    from vlm_reward_wrappers.study.bundle import build_bundled_model

    build_bundled_model(args.out, args.release or BUNDLED_CHECKPOINT, device=_device(args))


def _rl_arguments(parser: argparse.ArgumentParser) -> Handler:
    from vlm_reward_wrappers.rl import RL_PRESETS, RL_PRESETS_HELP, RLConfig

    parser.add_argument("--preset", default="quick", choices=list(RL_PRESETS), help=RL_PRESETS_HELP)
    parser.add_argument(
        "--out", default=None, help="output folder (default: runs/rl-<preset>); re-running resumes and skips"
    )
    parser.add_argument(
        "--mode",
        default="resume",
        choices=["resume", "overwrite"],
        help="resume (default): a run folder that holds a run of other settings (checkpoint weights, reward scale "
        "and mode, budget, agent settings), finished or not, is refused; overwrite: such runs are deleted and run "
        "again",
    )
    _add_execution_arguments(parser)
    parser.add_argument(
        "--speeds",
        default=None,
        help='with --dry-run: a JSON file of SAC steps/s on one core, {"metaworld": ..., "learned": ...} '
        "(default: measured on a 2-core x86_64 CPU; benchmarks/rl_speed.py measures them)",
    )
    overrides = parser.add_argument_group("overrides of the preset's settings (default: the preset's)")
    add_config_arguments(overrides, RLConfig, overrides=True)
    _hidden_alias(parser, parser._option_string_actions["--eval-freq"], "--eval-every")
    return _run_rl


def _add_execution_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--ray",
        action="store_true",
        help="run each independent run as a Ray task: starts a local Ray instance, or joins one",
    )
    parser.add_argument(
        "--ray-address",
        default=None,
        help="join the Ray cluster at this address (implies --ray); --out must be a folder every node sees",
    )
    parser.add_argument(
        "--dry-run", action="store_true", help="list the runs still to do and their cost in core-hours; run nothing"
    )


def _run_rl(args: argparse.Namespace) -> None:
    from vlm_reward_wrappers.execution import Backend, RunsFailedError
    from vlm_reward_wrappers.rl import RL_PRESETS, RLConfig, run_sweep, write_rl_report
    from vlm_reward_wrappers.rl.estimate import describe_estimate, estimate_sweep, read_speeds

    config = config_from_args(RLConfig, args, base=RL_PRESETS[args.preset])
    out = args.out or f"runs/rl-{args.preset}"
    if args.dry_run:
        speeds = read_speeds(args.speeds)
        print(describe_estimate(estimate_sweep(config, out, speeds), config, speeds))
        return
    backend = Backend(ray=args.ray or args.ray_address is not None, address=args.ray_address)
    try:
        run_sweep(config, out, overwrite=args.mode == "overwrite", backend=backend)
    except RunsFailedError:
        with contextlib.suppress(FileNotFoundError):  # no run has an evaluation to report yet
            print(write_rl_report(out))
        raise
    print(write_rl_report(out))


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], Handler]]] = {
    "tasks": ("list the Meta-World tasks, goal sentences and splits", _tasks_arguments),
    "collect": ("record scripted-expert demonstrations into a dataset folder", _collect_arguments),
    "pretrain-backbone": (
        "train the offline default backbone (CLIP loss on frames and task sentences)",
        _pretrain_arguments,
    ),
    "train": ("train a reward model with one objective and write its checkpoint", _train_arguments),
    "evaluate": ("score a dataset with a checkpoint and compare with the ground truth", _evaluate_arguments),
    "adapt": ("finetune a checkpoint on a few demonstrations of new tasks, with its own objective", _adapt_arguments),
    "pack": (
        "make a checkpoint folder complete (backbone weights, model card), or a release to publish",
        _pack_arguments,
    ),
    "push": (
        "publish a checkpoint's release (files and model card, no pickle) on the Hugging Face Hub",
        _push_arguments,
    ),
    "benchmark": ("collect, pretrain, train every objective, evaluate: the study in one command", _benchmark_arguments),
    "bundle": (
        "retrain the reward model that ships with the package (benchmark preset bundled) and its model card",
        _bundle_arguments,
    ),
    "rl": ("train SAC agents on learned, sparse and ground-truth rewards; report success curves", _rl_arguments),
}
"""Every subcommand: its one-line help, and the function that adds its flags and returns its handler."""


def build_parser(flags_of: Collection[str] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``vlm-rewards``, with the flags of the subcommands ``flags_of`` (None: of all), so
    that only their modules are imported; the others are listed by name and help.

    >>> build_parser(flags_of=[]).parse_args(["tasks"]).command
    'tasks'
    """
    parser = argparse.ArgumentParser(prog="vlm-rewards", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, add_arguments) in COMMANDS.items():
        subparser = subparsers.add_parser(name, help=summary, description=summary)
        if flags_of is None or name in flags_of:
            subparser.set_defaults(handler=add_arguments(subparser))
    return parser


def _runtime_errors() -> tuple[type[BaseException], ...]:
    """The errors of a run that fails with a message that says what to do (exit code 1, no traceback)."""
    from vlm_reward_wrappers.execution import RunsFailedError
    from vlm_reward_wrappers.io_utils import CorruptFileError
    from vlm_reward_wrappers.models import BackboneLoadError, CheckpointError
    from vlm_reward_wrappers.rendering import RenderingUnavailableError
    from vlm_reward_wrappers.training.trainer import NonFiniteLossError

    return (
        RunsFailedError,
        ValueError,
        FileNotFoundError,
        CorruptFileError,
        RenderingUnavailableError,
        CheckpointError,
        BackboneLoadError,
        NonFiniteLossError,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``vlm-rewards`` console script."""
    argv = sys.argv[1:] if argv is None else list(argv)
    command = next((word for word in argv if not word.startswith("-")), None)
    try:
        parser = build_parser(flags_of=[command] if command in COMMANDS else [])
    except MissingExtraError as error:
        print(f"vlm-rewards {command}: error: {error}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    except UsageError as error:
        parser.exit(2, f"vlm-rewards {args.command}: error: {error}\n")
    except _runtime_errors() as error:
        print(f"vlm-rewards {args.command}: error: {error}", file=sys.stderr)
        return 1
    except OSError as error:  # a read-only or full disk, a folder without permission
        print(f"vlm-rewards {args.command}: error: {os_error_message(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"vlm-rewards {args.command}: interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130
    return 0
