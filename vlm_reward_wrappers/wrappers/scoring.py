"""Scores and rewards, shared by the reward wrappers: one model per process, goals, reward modes.

* :func:`load_reward_model` loads a checkpoint once per process and device, so
  eight wrapped envs share one :class:`RewardModel`.
* :func:`resolve_goal` picks the goal sentence: the one given, else the
  Meta-World task's sentence as the checkpoint stores it.
* :class:`GoalScorer` scores a batch of frames against one goal sentence.
* :class:`RewardTransform` turns scores into rewards (raw, normalized, progress or
  shaped, times a scale, plus a success bonus) with one potential per sub-env.
* :func:`make_reward` builds the scorer and transform of a :class:`~.spec.RewardSpec`
  for envs whose frames have given :class:`~.spec.FrameSettings`.

Example:
    >>> transform = RewardTransform("normalized", {"mean": 1.0, "std": 2.0}, success_bonus=10.0)
    >>> transform(np.array([3.0, 1.0]), success=np.array([False, True]))
    array([ 1., 10.])
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any, get_args

import numpy as np
import torch

from vlm_reward_wrappers.models import DemonstrationGoal, RewardModel, demonstration_goal
from vlm_reward_wrappers.models.checkpoint import resolve_checkpoint, save_stamp
from vlm_reward_wrappers.models.config import warn_if_unlike_training
from vlm_reward_wrappers.rendering import is_metaworld_env
from vlm_reward_wrappers.wrappers.spec import CALIBRATED_MODES, FrameSettings, RewardMode, RewardSpec

_MODELS: dict[tuple[str, str, int | None], RewardModel] = {}
_forked = False
"""Whether this process is a fork: torch's OpenMP threads of the parent are gone, so scoring uses one thread."""


def _note_fork() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_note_fork)


class NonFiniteRewardError(RuntimeError):
    """The reward model gave a NaN or infinite score; no such reward is ever passed on."""


def load_reward_model(checkpoint: str | os.PathLike, device: str | torch.device = "cpu") -> RewardModel:
    """The checkpoint's reward model, loaded once per process and device.

    The cache key is the resolved path, the device and the checkpoint's save
    stamp, so a checkpoint saved again in place is loaded again.
    Raises :class:`~vlm_reward_wrappers.models.CheckpointError` naming the path and the cause.
    """
    path = resolve_checkpoint(checkpoint).resolve()
    device_name = str(torch.device(device))
    key = (str(path), device_name, save_stamp(path))
    if key not in _MODELS:
        model = RewardModel.from_pretrained(path, device=device_name)
        for stale in [cached for cached in _MODELS if cached[:2] == key[:2]]:
            del _MODELS[stale]
        _MODELS[key] = model
    return _MODELS[key]


def metaworld_task(env: Any) -> str | None:
    """The Meta-World v3 task name of ``env`` (from its unwrapped class or a base of it), or None for other envs."""
    if not is_metaworld_env(env):
        return None
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    names = {env_class: name for name, env_class in ALL_V3_ENVIRONMENTS.items()}
    return next((names[base] for base in type(env.unwrapped).__mro__ if base in names), None)


ScorerGoal = str | np.ndarray | DemonstrationGoal
"""What a scorer scores against: a goal sentence, a goal-image embedding ``(D,)``, or demonstrations."""


def resolve_goal(spec: RewardSpec, task: str | None, model: RewardModel) -> ScorerGoal:
    """The goal of a reward: ``spec.demonstration``, ``spec.goal_image`` (embedded), ``spec.goal``, else ``task``'s
    native goal.

    A task's native goal is the one its objective trains: the stored goal image
    for image-goal objectives (TCN, VIP with an image goal), else the sentence.
    """
    if spec.demonstration is not None:
        return demonstration_goal(model, spec.demonstration, spec.demo_reward)
    if spec.goal_image is not None:
        return model.embed_goal_frames(np.asarray(spec.goal_image)).cpu().numpy()
    if spec.goal is not None:
        return spec.goal
    if task is None:
        raise ValueError(
            "cannot tell the goal: the env is not a Meta-World v3 task. Pass the goal sentence, "
            "e.g. VLMRewardWrapper(env, checkpoint, goal='balance the pole'), or goal_image= or demonstration=."
        )
    goal = model.native_goal(task)
    return goal.cpu().numpy() if isinstance(goal, torch.Tensor) else goal


class GoalScorer:
    """Raw model scores of frames against one goal: a sentence or a goal-image embedding.

    The model comes from :func:`load_reward_model` on first use. A pickled
    scorer holds only the checkpoint path, goal and device, and loads the model
    again in the process that unpickles it. In a forked process it scores with
    one torch thread: the parent's OpenMP threads do not survive a fork.

    Example:
        >>> scorer = GoalScorer("runs/quick/checkpoints/triplet-seed0", "open the door")   # doctest: +SKIP
        >>> scorer(np.zeros((2, 64, 64, 3), np.uint8))                                  # doctest: +SKIP
        array([-0.21, -0.21])
    """

    def __init__(self, checkpoint: str | os.PathLike, goal: ScorerGoal, device: str | torch.device = "cpu") -> None:
        self.checkpoint = str(checkpoint)
        if isinstance(goal, str) and not goal.strip():
            raise ValueError("the goal sentence is empty; pass one such as 'open the door'")
        self.goal = goal
        self.device = str(device)
        self._model: RewardModel | None = None

    @property
    def model(self) -> RewardModel:
        if self._model is None:
            self._model = load_reward_model(self.checkpoint, self.device)
        return self._model

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """Scores ``(B,)`` (float64) of uint8 frames ``(B, H, W, 3)``, in one forward pass."""
        model = self.model
        if _forked and torch.get_num_threads() > 1:
            torch.set_num_threads(1)  # more would wait forever for threads that did not survive the fork
        if model.training:
            model.eval()
        with torch.no_grad():
            goal = torch.as_tensor(self.goal) if isinstance(self.goal, np.ndarray) else self.goal
            scores = model.reward_from_features(model.encode_images(frames), goal)
        values = scores.float().cpu().numpy().astype(np.float64)
        if not np.isfinite(values).all():
            raise NonFiniteRewardError(
                f"the reward model {self.checkpoint} scored a frame {values[~np.isfinite(values)][0]} for "
                f"{'goal ' + repr(self.goal) if isinstance(self.goal, str) else 'its goal image'}. "
                "Its weights are probably corrupt (NaN); retrain it or use another checkpoint."
            )
        return values

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


class RewardTransform:
    """Rewards from raw scores: ``raw``, ``normalized``, ``progress``, ``shaped`` or ``shaped-progress``, times
    ``reward_scale``, plus a success bonus.

    ``progress`` maps the scores ``progress_range = (zero, one)`` to 0 and 1 and clips to [0, 1].

    ``shaped`` is potential-based shaping ``gamma * phi(o') - phi(o)`` with
    ``phi`` the normalized score, ``shaped-progress`` the same with ``phi`` the
    progress; they keep one potential per sub-env, which :meth:`start` sets
    from the first frame of each episode.

    Example:
        >>> transform = RewardTransform("shaped", {"mean": 1.0, "std": 2.0}, gamma=0.5)
        >>> transform.start(np.array([3.0]))            # phi(o_0) = (3 - 1) / 2 = 1
        >>> transform(np.array([5.0]))                   # 0.5 * 2 - 1
        array([0.])
        >>> RewardTransform("progress", {"mean": 0.0, "std": 1.0}, progress_range=(0.2, 0.6))(np.array([0.1, 0.3, 0.9]))
        array([0.  , 0.25, 1.  ])
        >>> success_first = RewardTransform(                 # success + 0.5 * progress
        ...     "progress", {"mean": 0.0, "std": 1.0}, success_bonus=1.0, progress_range=(0.2, 0.6), reward_scale=0.5
        ... )
        >>> success_first(np.array([0.3, 0.9]), success=np.array([False, True]))
        array([0.125, 1.5  ])
        >>> shaped = RewardTransform("shaped-progress", {"mean": 0.0, "std": 1.0}, gamma=0.5, progress_range=(0.0, 1.0))
        >>> shaped.start(np.array([0.2]))                # phi(o_0) = 0.2
        >>> shaped(np.array([0.8])), shaped(np.array([0.8]))  # 0.5 * 0.8 - 0.2, then 0.5 * 0.8 - 0.8
        (array([0.2]), array([-0.4]))
    """

    def __init__(
        self,
        mode: RewardMode,
        reward_stats: dict[str, float],
        gamma: float = 0.99,
        success_bonus: float = 0.0,
        num_envs: int = 1,
        progress_range: tuple[float, float] | None = None,
        reward_scale: float = 1.0,
    ) -> None:
        if mode not in get_args(RewardMode):
            raise ValueError(f"reward_mode must be one of {', '.join(get_args(RewardMode))}; got {mode!r}.")
        if mode in CALIBRATED_MODES and (progress_range is None or not progress_range[1] > progress_range[0]):
            raise ValueError(
                f"reward_mode={mode!r} needs progress_range=(zero, one) with one > zero; got {progress_range}"
            )
        self.progress_range = progress_range
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] (the agent's discount factor); got {gamma}.")
        self.mode = mode
        self.mean = float(reward_stats["mean"])
        self.std = max(float(reward_stats["std"]), 1e-8)
        self.gamma = gamma
        self.success_bonus = success_bonus
        self.reward_scale = reward_scale
        self._potential = np.full(num_envs, np.nan)

    @property
    def needs_first_frames(self) -> bool:
        """Whether :meth:`start` must be given the score of each episode's first frame."""
        return self.mode in ("shaped", "shaped-progress")

    def normalize(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.mean) / self.std

    def progress(self, scores: np.ndarray) -> np.ndarray:
        """Per-task progress in [0, 1]: ``progress_range`` mapped to 0 and 1, clipped."""
        if self.progress_range is None:
            raise ValueError("progress needs progress_range=(zero, one), the task's calibration")
        zero, one = self.progress_range
        return np.clip((scores - zero) / (one - zero), 0.0, 1.0)

    def _potential_of(self, scores: np.ndarray) -> np.ndarray:
        return self.progress(scores) if self.mode == "shaped-progress" else self.normalize(scores)

    def start(self, scores: np.ndarray, where: np.ndarray | None = None) -> None:
        """New episodes begin: ``scores`` of their first frames, for the sub-envs in the mask ``where``."""
        if self.needs_first_frames:
            self._potential[slice(None) if where is None else where] = self._potential_of(scores)

    def __call__(self, scores: np.ndarray, success: np.ndarray | None = None) -> np.ndarray:
        """Rewards of one step of every sub-env from its ``scores`` (and ``success`` flags, for the bonus)."""
        if self.mode == "raw":
            rewards = scores.copy()
        elif self.mode == "normalized":
            rewards = self.normalize(scores)
        elif self.mode == "progress":
            rewards = self.progress(scores)
        else:
            if np.isnan(self._potential).any():
                raise RuntimeError(
                    f"reward_mode={self.mode!r} needs the first frame of the episode: call reset() before step()."
                )
            potential = self._potential_of(scores)
            rewards = self.gamma * potential - self._potential
            self._potential = potential
        rewards = self.reward_scale * rewards
        if success is not None and self.success_bonus:
            rewards = rewards + self.success_bonus * (np.asarray(success) > 0)
        return rewards


def make_reward(spec: RewardSpec, frames: Sequence[FrameSettings]) -> tuple[GoalScorer, RewardTransform]:
    """The scorer and reward transform of ``spec`` for envs whose frames have ``frames`` settings (one per env).

    Warns when frames are rendered unlike the checkpoint's training frames;
    refuses envs of several tasks without an explicit goal.
    """
    tasks = {setting.task for setting in frames}
    if spec.goal is None and spec.goal_image is None and spec.demonstration is None and len(tasks) > 1:
        raise ValueError(
            f"the sub-envs run different tasks ({sorted(map(str, tasks))}): pass goal='...' or make one vector env "
            "per task."
        )
    model = load_reward_model(spec.checkpoint, spec.device)
    goal = resolve_goal(spec, next(iter(tasks)), model)
    for camera, image_size in sorted({(setting.camera, setting.image_size) for setting in frames}):
        warn_if_unlike_training(model.config, camera, image_size, where=f"checkpoint {spec.checkpoint}", stacklevel=4)
    trained = model.config.training.get("tasks") or sorted(model.config.goal_texts)
    own_goal = spec.goal is None and spec.goal_image is None and spec.demonstration is None
    task = str(next(iter(tasks)))
    if own_goal and trained and task not in trained:
        warnings.warn(
            f"checkpoint {spec.checkpoint} never trained on {task} (it trained on {', '.join(trained)}): its reward "
            "there is untested. Adapt it with `vlm-rewards adapt`, or give the task by a demonstration.",
            stacklevel=4,
        )
    scorer = GoalScorer(spec.checkpoint, goal, spec.device)
    progress_range = (
        model.progress_range(
            next(iter(tasks)), goal if isinstance(goal, str | DemonstrationGoal) else torch.as_tensor(goal)
        )
        if spec.reward_mode in CALIBRATED_MODES
        else None
    )
    transform = RewardTransform(
        spec.reward_mode,
        model.reward_stats_for(goal),
        spec.gamma,
        spec.success_bonus,
        len(frames),
        progress_range,
        spec.reward_scale,
    )
    return scorer, transform
