"""One RL run: SAC on one task with one reward source and seed, evaluated, saved and resumable.

A run folder holds:

* ``run.json``: what the run is (task, source, seed, checkpoint, agent settings) and the warnings
  its reward gave (frames unlike the checkpoint's training frames);
* ``curve.csv``: the evaluation curve (``step, success_rate, gt_return, reward_return, train_success_rate,
  wall_s``), one row per evaluation;
* ``state/``: the agent with its optimizers, the replay buffer, the RNG states and the
  evaluation history, saved at every evaluation as plain data (safetensors, JSON, NumPy: reading it never
  unpickles, see :mod:`~vlm_reward_wrappers.rl.state`). A new state is written beside the
  old one and swapped in, so a kill at any moment leaves the previous save;
* ``tensorboard/``: TensorBoard event files through SB3's logger: every evaluation (``eval/success_rate``,
  ``eval/gt_return``, ``eval/reward_return``, ``eval/train_success_rate``) and SAC's own training scalars
  (``tensorboard --logdir OUT`` shows a sweep's runs side by side);
* ``done.json`` and the final ``agent.zip`` once the run is complete (a finished run is skipped;
  its state is deleted). ``agent.zip`` is SB3's format, for ``SAC.load``: it holds pickles, so load only
  the ones you trust; the package itself never loads it.

Training episodes have seeds ``1000 * (seed + 1) + episode``; evaluation
episodes ``seed 0 .. eval_episodes - 1`` at every evaluation, never a training seed.
Saves fall between episodes, so a resumed run starts its next episode with the
seed an uninterrupted run would have used, from the same agent, buffer and RNGs.

Example:
    >>> from vlm_reward_wrappers.rl import RL_PRESETS, RunSpec, run_one
    >>> spec = RunSpec("drawer-close-v3", parse_source("gt"), seed=0)
    >>> curve = run_one(spec, RL_PRESETS["tiny"], "runs/rl-demo/drawer-close-v3/gt/seed0")   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import os
import secrets
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.extras import require
from vlm_reward_wrappers.io_utils import (
    CorruptFileError,
    atomic_path,
    read_json,
    write_json_atomic,
    write_text_atomic,
)
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.models import read_checkpoint_config
from vlm_reward_wrappers.rl.config import RLConfig
from vlm_reward_wrappers.rl.pipelined import DeferredRewardBuffer, PipelinedRewardVecEnv
from vlm_reward_wrappers.rl.sources import RewardSource, parse_source, with_reward
from vlm_reward_wrappers.rl.state import Progress, is_state, load_state, read_progress, save_state
from vlm_reward_wrappers.training.trainer import RunMismatchError
from vlm_reward_wrappers.version import __version__
from vlm_reward_wrappers.wrappers import RewardSpec

CURVE_FIELDS = ("step", "success_rate", "gt_return", "reward_return", "train_success_rate", "wall_s")
"""Columns of ``curve.csv``: env steps, evaluation success rate (success at any step of an episode), mean
Meta-World return, mean return of the run's own reward, success rate of the training episodes since the
previous evaluation, and the run's wall time in seconds so far."""
STATE = "state"
DONE = "done.json"
TENSORBOARD = "tensorboard"
TRAIN_SEED_STRIDE = 1000


@dataclass(frozen=True)
class RunSpec:
    """Which run: a task, a reward source and an agent seed."""

    task: str
    source: RewardSource
    seed: int

    @property
    def label(self) -> str:
        return f"{self.task} {self.source.name} seed{self.seed}"


class EpisodeSeeds(gym.Wrapper):
    """Resets episode ``k`` with seed ``base + k``, whatever seed the caller passes; ``episode`` is the next ``k``."""

    def __init__(self, env: gym.Env, base: int, episode: int = 0) -> None:
        super().__init__(env)
        self.base = base
        self.episode = episode

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self.episode += 1
        return self.env.reset(seed=self.base + self.episode - 1, options=options)


def make_run_env(spec: RunSpec, config: RLConfig) -> gym.Env:
    """The env of a run, rewarded by its source."""
    env = make_metaworld_env(spec.task, max_episode_steps=config.max_episode_steps, image_size=64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # said once, in run.json and the report: frame_warnings()
        return with_reward(env, spec.source, gamma=config.gamma, camera=config.camera, image_size=config.image_size)


def frame_warnings(source: RewardSource, config: RLConfig) -> list[str]:
    """How the frames a learned source scores differ from its checkpoint's training frames (none: ``[]``)."""
    if source.checkpoint is None:
        return []
    trained = read_checkpoint_config(source.checkpoint)[0]
    problems = trained.frame_mismatches(config.camera or trained.camera, config.image_size or trained.image_size)
    return [f"{source.checkpoint}: {problem}" for problem in problems]


def _worker_env(task: str, max_episode_steps: int, seed_base: int, episode: int) -> gym.Env:
    """The training env of a pipelined run, made in its worker process (Meta-World's reward kept as ``gt_reward``)."""
    env = make_metaworld_env(task, max_episode_steps=max_episode_steps, image_size=64)
    return EpisodeSeeds(env, seed_base, episode)


def uses_reward_worker(spec: RunSpec, config: RLConfig) -> bool:
    """Whether the run renders and steps its env in a worker process (learned sources only)."""
    if not spec.source.learned or config.reward_worker == "off":
        return False
    return config.reward_worker == "on" or (os.cpu_count() or 1) >= 2


def evaluate_agent(agent: SAC, env: gym.Env, episodes: int) -> dict[str, float]:
    """Success rate (success at any step), mean Meta-World return and mean own-reward return of ``episodes``
    deterministic episodes with seeds ``0 .. episodes - 1``."""
    success, gt_returns, own_returns = [], [], []
    for episode in range(episodes):
        obs, _ = env.reset(seed=episode)
        done, succeeded, gt_return, own_return = False, False, 0.0, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, reward, terminated, truncated, info = env.step(action)
            succeeded |= bool(info.get(info_keys.IS_SUCCESS, False))
            gt_return += float(info[info_keys.GT_REWARD])
            own_return += float(reward)
            done = terminated or truncated
        success.append(succeeded)
        gt_returns.append(gt_return)
        own_returns.append(own_return)
    return {
        "success_rate": float(np.mean(success)),
        "gt_return": float(np.mean(gt_returns)),
        "reward_return": float(np.mean(own_returns)),
    }


class _TrainingSuccess(BaseCallback):
    """Counts training episodes and their successes."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes = 0
        self.successes = 0
        self._succeeded = False

    def _on_step(self) -> bool:
        info = self.locals["infos"][0]
        self._succeeded |= bool(info.get(info_keys.IS_SUCCESS, False))
        if self.locals["dones"][0]:
            self.episodes += 1
            self.successes += self._succeeded
            self._succeeded = False
        return True


def _save_state(folder: Path, agent: SAC, progress: Progress) -> None:
    """Write the run's state to ``state.new/`` and swap it in for ``state/`` (the old one survives any kill)."""
    new, current, old = folder / f"{STATE}.new", folder / STATE, folder / f"{STATE}.old"
    shutil.rmtree(new, ignore_errors=True)
    save_state(new, agent, progress)
    if current.exists():
        shutil.rmtree(old, ignore_errors=True)
        current.rename(old)
    new.rename(current)
    shutil.rmtree(old, ignore_errors=True)


def _saved_state(spec: RunSpec, folder: Path) -> Path | None:
    """The last complete state of a run (``state/``, or ``state.old/`` if a kill fell inside the swap)."""
    shutil.rmtree(folder / f"{STATE}.new", ignore_errors=True)
    for name in (STATE, f"{STATE}.old"):
        if (folder / name / "progress.pkl").is_file():
            raise CorruptFileError(
                f"the saved state of run {spec.label} in {folder / name} is a pickle written by an earlier version "
                f"of the package, which no longer loads pickles from a folder; delete {folder} to rerun it."
            )
        if is_state(folder / name):
            return folder / name
    return None


def _write_curve(folder: Path, curve: list[dict[str, float]]) -> None:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=CURVE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(curve)
    write_text_atomic(folder / "curve.csv", text.getvalue())


def read_curve(folder: str | os.PathLike) -> list[dict[str, float]]:
    """The evaluation curve of a run folder; a file that does not parse is named in the error."""
    path = Path(folder) / "curve.csv"
    try:
        with open(path, newline="") as handle:
            return [{key: float(value) for key, value in row.items()} for row in csv.DictReader(handle)]
    except (ValueError, TypeError, KeyError) as error:
        raise CorruptFileError(
            f"{path} is not an evaluation curve ({error}); delete the run folder to rerun it."
        ) from error


def make_train_venv(spec: RunSpec, config: RLConfig, *, episode: int = 0) -> VecEnv:
    """The training env of a run from episode ``episode`` on: pipelined when :func:`uses_reward_worker` says so."""
    seed_base = TRAIN_SEED_STRIDE * (spec.seed + 1)
    if not uses_reward_worker(spec, config):
        train_env = EpisodeSeeds(make_run_env(spec, config), seed_base, episode)
        return DummyVecEnv([lambda: train_env])
    assert spec.source.checkpoint is not None
    reward = RewardSpec.of(
        spec.source.checkpoint,
        reward_mode=spec.source.reward_mode,
        reward_scale=spec.source.reward_scale,
        gamma=config.gamma,
        success_bonus=spec.source.success_bonus,
        device=config.device,
    )
    env_fn = functools.partial(_worker_env, spec.task, config.max_episode_steps, seed_base, episode)
    return PipelinedRewardVecEnv(env_fn, reward, spec.task, camera=config.camera, image_size=config.image_size)


def new_agent(spec: RunSpec, config: RLConfig, venv: VecEnv) -> SAC:
    """A fresh SAC agent with the sweep's settings, its replay buffer as large as the run."""
    agent = SAC(
        "MlpPolicy",
        venv,
        learning_rate=config.learning_rate,
        buffer_size=config.total_steps,
        learning_starts=config.learning_starts,
        batch_size=config.batch_size,
        tau=config.tau,
        gamma=config.gamma,
        gradient_steps=config.gradient_steps,
        replay_buffer_class=DeferredRewardBuffer if isinstance(venv, PipelinedRewardVecEnv) else None,
        policy_kwargs={"net_arch": list(config.net_arch)},
        seed=spec.seed,
        device=config.device,
    )
    if isinstance(venv, PipelinedRewardVecEnv):
        assert agent.replay_buffer is not None
        venv.attach(agent.replay_buffer)
    return agent


AGENT_SETTINGS = (
    "total_steps",
    "eval_freq",
    "eval_episodes",
    "max_episode_steps",
    "learning_rate",
    "batch_size",
    "learning_starts",
    "tau",
    "gamma",
    "net_arch",
    "gradient_steps",
)
"""The settings of an :class:`~.config.RLConfig` that change what a run learns (its ``run.json`` ``settings``)."""


def reward_and_agent(source: RewardSource, seed: int, config: RLConfig) -> dict[str, Any]:
    """The part of a run's identity known without loading its checkpoint: the source's scales and mode, the seed
    and the agent's settings (what ``vlm-rewards rl --dry-run`` compares with a finished run)."""
    return {
        "success_bonus": source.success_bonus,
        "reward_scale": source.reward_scale,
        "reward_mode": source.reward_mode,
        "seed": seed,
        "agent": "SAC",
        "settings": {name: value for name, value in to_dict(config).items() if name in AGENT_SETTINGS},
    }


def run_record(spec: RunSpec, config: RLConfig, warnings_given: list[str]) -> dict[str, Any]:
    """What ``run.json`` holds."""
    return {
        "task": spec.task,
        "source": spec.source.name,
        "checkpoint": spec.source.checkpoint,
        "checkpoint_sha256": read_checkpoint_config(spec.source.checkpoint)[1] if spec.source.checkpoint else None,
        **reward_and_agent(spec.source, spec.seed, config),
        "warnings": warnings_given,
        "reward_worker": uses_reward_worker(spec, config),
        "package_version": __version__,
    }


IDENTITY = (
    "task",
    "source",
    "checkpoint_sha256",
    "success_bonus",
    "reward_scale",
    "reward_mode",
    "seed",
    "agent",
    "settings",
)
"""The fields of ``run.json`` that make a run what it is: a resumed or reused run must share them all. (The
reward worker changes when the replay buffer's rewards arrive, not what they are: recorded, not compared.)"""


_RENAMED_SETTINGS = {"eval_every": "eval_freq"}
"""Settings by their names in the ``run.json`` of earlier versions (0.2 called ``eval_freq`` ``eval_every``)."""


def _earlier_scale(stored: dict[str, Any]) -> dict[str, Any]:
    """The reward scale of a ``run.json`` of a version before 0.4, which recorded none: unscaled, and a learned
    source's reward normalized."""
    return {"reward_scale": 1.0, "reward_mode": "normalized" if stored.get("checkpoint") else None}


def _changed_identity(stored: dict[str, Any], requested: dict[str, Any]) -> list[str]:
    """The identity fields in which a stored run differs from the requested one (settings by name)."""
    stored = {**_earlier_scale(stored), **stored}
    changed = [key for key in IDENTITY if key != "settings" and key in requested and stored.get(key) != requested[key]]
    wanted = requested["settings"]
    had = {_RENAMED_SETTINGS.get(name, name): value for name, value in stored.get("settings", {}).items()}
    return changed + [
        f"settings.{name}" for name in sorted(set(had) | set(wanted)) if had.get(name) != wanted.get(name)
    ]


def differs_from(folder: str | os.PathLike, record: dict[str, Any]) -> list[str]:
    """The identity fields in which the run recorded in ``folder`` differs from ``record`` (a :func:`run_record`,
    or part of one: its fields alone are compared); empty when the folder holds no run, or this one."""
    if not (Path(folder) / "run.json").is_file():
        return []
    return _changed_identity(read_run(folder), record)


def _unreadable_state(spec: RunSpec, saved: Path, folder: Path, error: Exception) -> CorruptFileError:
    """The error for a saved run state that does not load; it names the state and the folder to delete."""
    return CorruptFileError(
        f"the saved state of run {spec.label} in {saved} cannot be read ({error}); delete {folder} to rerun it."
    )


def is_done(folder: str | os.PathLike) -> bool:
    """Whether a run folder holds a finished run."""
    return (Path(folder) / DONE).is_file()


WANDB_ID = "wandb_id"
"""The file of a run folder that holds its Weights & Biases run id (a new folder, a new id)."""


@contextlib.contextmanager
def mirrored_to_wandb(spec: RunSpec, config: RLConfig, folder: Path, record: dict[str, Any]) -> Iterator[None]:
    """Mirror the run's TensorBoard logs to the Weights & Biases project ``config.wandb`` while the block runs
    (nothing when it is None): one W&B run per run folder, named by the run, resumed when the run resumes; marked
    failed when the block raises."""
    if config.wandb is None:
        yield
        return
    wandb = require("wandb", extra="wandb", needed_by="vlm-rewards rl --wandb")
    id_file = folder / WANDB_ID
    if not id_file.is_file():
        write_text_atomic(id_file, secrets.token_hex(8))
    run = wandb.init(
        project=config.wandb,
        name=spec.label,
        id=id_file.read_text().strip(),
        resume="allow",
        group=spec.task,
        job_type=spec.source.name,
        config=record,
        dir=str(folder),
        sync_tensorboard=True,
    )
    try:
        yield
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()


def run_one(
    spec: RunSpec,
    config: RLConfig,
    folder: str | os.PathLike,
    *,
    log: Callable[[str], None] = print,
    stop_after: int | None = None,
    overwrite: bool = False,
) -> list[dict[str, float]]:
    """Train (or resume, or skip when done) one run; return its evaluation curve.

    A folder that holds this run with other settings (another checkpoint's weights, another budget or agent
    setting) raises :class:`RunMismatchError` naming what differs; ``overwrite`` deletes it and starts again.
    ``stop_after`` ends the call after that many evaluations of this call, leaving a resumable
    run (how tests interrupt a run).
    """
    folder = Path(folder)
    with writing(folder):  # one writer: a second sweep waits for this run, then finds it done
        return _run_locked(spec, config, folder, log, stop_after, overwrite)


def _run_locked(
    spec: RunSpec,
    config: RLConfig,
    folder: Path,
    log: Callable[[str], None],
    stop_after: int | None,
    overwrite: bool,
) -> list[dict[str, float]]:
    """:func:`run_one`, by the process that holds the lock of ``folder``."""
    record = run_record(spec, config, frame_warnings(spec.source, config))
    changed = differs_from(folder, record)
    if changed and not overwrite:
        raise RunMismatchError(
            f"{folder} holds run {spec.label} with other settings (differs in: {', '.join(changed)}); its "
            "curve and agent belong to those. Sweep into another --out, or pass --mode overwrite to replace it."
        )
    if changed:
        shutil.rmtree(folder)
    if is_done(folder):
        return read_curve(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "run.json", record)
    saved = _saved_state(spec, folder)
    progress = Progress()
    if saved is not None:
        try:
            progress = read_progress(saved)
        except CorruptFileError as error:
            raise _unreadable_state(spec, saved, folder, error) from error
    venv = make_train_venv(spec, config, episode=progress.steps // config.max_episode_steps)
    eval_env = make_run_env(spec, config)
    agent = new_agent(spec, config, venv)
    if saved is not None:
        try:
            load_state(saved, agent)
        except CorruptFileError as error:
            venv.close()
            raise _unreadable_state(spec, saved, folder, error) from error
        log(f"[{spec.label}] resuming at step {progress.steps}")
    try:
        with mirrored_to_wandb(spec, config, folder, record):
            agent.set_logger(configure(str(folder / TENSORBOARD), ["tensorboard"]))
            try:
                _train(spec, config, folder, agent, venv, eval_env, progress, log, stop_after)
            finally:
                agent.logger.close()  # the event files complete before W&B's last sync
    finally:
        venv.close()  # ends a reward worker's process, whatever happened
        eval_env.close()
    if progress.steps >= config.total_steps:
        with atomic_path(folder / "agent.zip") as temporary, open(temporary, "wb") as handle:
            agent.save(handle)  # SB3's format, for the user; the state stays whole until done
        write_json_atomic(folder / DONE, {"steps": progress.steps, "wall_s": progress.wall_s})
        shutil.rmtree(folder / STATE, ignore_errors=True)
    return progress.curve


def _train(
    spec: RunSpec,
    config: RLConfig,
    folder: Path,
    agent: SAC,
    venv: VecEnv,
    eval_env: gym.Env,
    progress: Progress,
    log: Callable[[str], None],
    stop_after: int | None,
) -> None:
    """Train ``agent`` from ``progress`` on, evaluating, saving and logging every ``eval_freq`` steps, up to the
    budget or ``stop_after`` evaluations."""
    counter = _TrainingSuccess()
    evaluations = 0
    while progress.steps < config.total_steps and (stop_after is None or evaluations < stop_after):
        started = time.perf_counter()
        counter.episodes = counter.successes = 0
        agent.learn(config.eval_freq, callback=counter, reset_num_timesteps=progress.steps == 0)
        if isinstance(venv, PipelinedRewardVecEnv):
            venv.flush()  # the last step's reward, before the buffer is saved
        result = evaluate_agent(agent, eval_env, config.eval_episodes)
        progress.steps += config.eval_freq
        progress.wall_s += time.perf_counter() - started
        row = {
            "step": progress.steps,
            **result,
            "train_success_rate": counter.successes / max(counter.episodes, 1),
            "wall_s": round(progress.wall_s, 1),
        }
        progress.curve.append(row)
        _save_state(folder, agent, progress)
        _write_curve(folder, progress.curve)
        for key in ("success_rate", "gt_return", "reward_return", "train_success_rate"):
            agent.logger.record(f"eval/{key}", row[key])
        agent.logger.dump(progress.steps)  # after the save: the logs never run ahead of what a resume starts from
        evaluations += 1
        log(
            f"[{spec.label}] step {progress.steps}/{config.total_steps}: success {row['success_rate']:.2f} "
            f"(training {row['train_success_rate']:.2f}), return {row['gt_return']:.0f} gt / "
            f"{row['reward_return']:.1f} own, {progress.steps / progress.wall_s:.0f} steps/s"
        )


def read_run(folder: str | os.PathLike) -> dict[str, Any]:
    """A run folder's ``run.json``."""
    return read_json(Path(folder) / "run.json")


__all__ = ["CURVE_FIELDS", "RunSpec", "evaluate_agent", "is_done", "parse_source", "read_curve", "read_run", "run_one"]
