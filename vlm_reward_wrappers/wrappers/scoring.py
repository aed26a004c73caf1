"""What the reward wrappers share: one model per process, goals, frames and reward modes.

* :func:`load_reward_model` loads a checkpoint once per process and device, so
  eight wrapped envs share one :class:`RewardModel`.
* :class:`GoalScorer` scores a batch of frames against one goal sentence.
* :class:`PicklableRenderer` renders an env's frames, opens GL late and again after pickling.
* :class:`RewardTransform` turns scores into rewards (raw, normalized or shaped)
  with one potential per sub-env.

Example:
    >>> from vlm_reward_wrappers.wrappers.scoring import load_reward_model
    >>> model = load_reward_model("runs/quick/checkpoints/triplet")          # doctest: +SKIP
    >>> model is load_reward_model("runs/quick/checkpoints/triplet")         # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlm_reward_wrappers.models.reward_model import CONFIG_NAME, RewardModel, RewardModelConfig
from vlm_reward_wrappers.rendering import FrameRenderer, is_metaworld_env
from vlm_reward_wrappers.tasks import TASKS

REWARD_MODES = ("raw", "normalized", "shaped")
"""``raw``: the model score; ``normalized``: ``(score - mean) / std`` with the
checkpoint's reward statistics; ``shaped``: ``gamma * phi(o') - phi(o)`` with
``phi`` the normalized score."""

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

    The cache key is the resolved path, the device and the modification time
    of the checkpoint's ``config.json``, so a checkpoint saved again in place is
    loaded again. Raises :class:`CheckpointError` naming the path and the cause.
    """
    path = Path(checkpoint).expanduser().resolve()
    device_name = str(torch.device(device))
    config_file = path / CONFIG_NAME
    key = (str(path), device_name, config_file.stat().st_mtime_ns if config_file.is_file() else None)
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


def resolve_goal(goal: str | None, task: str | None) -> str:
    """``goal`` if given, else the goal sentence of the Meta-World ``task``."""
    if goal is not None:
        if not goal.strip():
            raise ValueError(
                "goal is empty: pass a sentence such as goal='open the door', or leave goal=None for a Meta-World task's own goal."
            )
        return goal
    if task is None or task not in TASKS:
        raise ValueError(
            "cannot tell the goal: the env is not a Meta-World v3 task. Pass the goal sentence, "
            "e.g. VLMRewardWrapper(env, checkpoint, goal='balance the pole')."
        )
    return TASKS[task].goal


def warn_if_unlike_training(config: RewardModelConfig, checkpoint: str, camera: str, image_size: int) -> None:
    """Warn when frames are rendered unlike the frames the checkpoint was trained on."""
    if camera != config.camera:
        warnings.warn(
            f"frames are rendered with camera {camera!r}, but checkpoint {checkpoint} was trained on {config.camera!r} "
            "frames; its rewards may not mean much. Leave camera=None to use the checkpoint's camera.",
            UserWarning,
            stacklevel=3,
        )
    if image_size != config.image_size:
        warnings.warn(
            f"frames are rendered at {image_size} px, but checkpoint {checkpoint} was trained on {config.image_size} px "
            "frames. Leave image_size=None to use the checkpoint's size.",
            UserWarning,
            stacklevel=3,
        )


class GoalScorer:
    """Raw model scores of frames against one goal sentence.

    The model comes from :func:`load_reward_model` on first use. A pickled
    scorer holds only the checkpoint path, goal and device, and loads the model
    again in the process that unpickles it. In a forked process it scores with
    one torch thread: the parent's OpenMP threads do not survive a fork.

    Example:
        >>> scorer = GoalScorer("runs/quick/checkpoints/triplet", "open the door")   # doctest: +SKIP
        >>> scorer(np.zeros((2, 64, 64, 3), np.uint8))                                  # doctest: +SKIP
        array([-0.21, -0.21])
    """

    def __init__(self, checkpoint: str | os.PathLike, goal: str, device: str | torch.device = "cpu") -> None:
        self.checkpoint = str(checkpoint)
        self.goal = resolve_goal(goal, None)
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
            scores = model.reward_from_features(model.encode_images(frames), self.goal)
        values = scores.float().cpu().numpy().astype(np.float64)
        if not np.isfinite(values).all():
            raise NonFiniteRewardError(
                f"the reward model {self.checkpoint} scored a frame {values[~np.isfinite(values)][0]} for goal {self.goal!r}. "
                "Its weights are probably corrupt (NaN); retrain it or use another checkpoint."
            )
        return values

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_model": None}


class PicklableRenderer:
    """A :class:`FrameRenderer` of an env, opened at the first frame and dropped when pickled.

    Meta-World frames need a GL context, which is opened late so that the
    process can still be forked (``AsyncVectorEnv`` makes one env in the
    parent before it forks its workers); it is made again after unpickling.
    (:class:`FrameRenderer` refuses GL in a process forked after its parent
    opened GL, saying how to start the workers instead.)
    """

    def __init__(self, env: Any, camera: str, image_size: int) -> None:
        self.env = env
        self.camera = camera
        self.image_size = image_size
        self._renderer: FrameRenderer | None = None
        if is_metaworld_env(env):
            _check_camera(env.unwrapped.model, camera)
        else:  # frames come from env.render(); this checks its render mode and opens nothing
            self._renderer = FrameRenderer(env, camera, image_size, image_size)

    def render(self) -> np.ndarray:
        """The env's current frame, upright, ``(image_size, image_size, 3)`` uint8 (Meta-World)."""
        if self._renderer is None:
            self._renderer = FrameRenderer(self.env, self.camera, self.image_size, self.image_size)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_renderer": None}


def _check_camera(model: Any, camera: str) -> None:
    import mujoco

    if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera) < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, index) for index in range(model.ncam)]
        raise ValueError(f"camera {camera!r} is not in this model; pass camera= one of {names}")


class RewardTransform:
    """Rewards from raw scores: ``raw``, ``normalized`` or ``shaped``, plus a success bonus.

    ``shaped`` is potential-based shaping ``gamma * phi(o') - phi(o)`` with
    ``phi`` the normalized score; it keeps one potential per sub-env, which
    :meth:`start` sets from the first frame of each episode.

    Example:
        >>> transform = RewardTransform("shaped", {"mean": 1.0, "std": 2.0}, gamma=0.5)
        >>> transform.start(np.array([3.0]))            # phi(o_0) = (3 - 1) / 2 = 1
        >>> transform(np.array([5.0]))                   # 0.5 * 2 - 1
        array([0.])
    """

    def __init__(
        self,
        mode: str,
        reward_stats: dict[str, float],
        gamma: float = 0.99,
        success_bonus: float = 0.0,
        num_envs: int = 1,
    ) -> None:
        if mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {', '.join(REWARD_MODES)}; got {mode!r}.")
        if not 0.0 < gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] (the agent's discount factor); got {gamma}.")
        if not np.isfinite(success_bonus):
            raise ValueError(f"success_bonus must be a finite number; got {success_bonus}.")
        self.mode = mode
        self.mean = float(reward_stats["mean"])
        self.std = max(float(reward_stats["std"]), 1e-8)
        self.gamma = gamma
        self.success_bonus = success_bonus
        self._potential = np.full(num_envs, np.nan)

    @property
    def needs_first_frames(self) -> bool:
        """Whether :meth:`start` must be given the score of each episode's first frame."""
        return self.mode == "shaped"

    def normalize(self, scores: np.ndarray) -> np.ndarray:
        return (scores - self.mean) / self.std

    def start(self, scores: np.ndarray, where: np.ndarray | None = None) -> None:
        """New episodes begin: ``scores`` of their first frames, for the sub-envs in the mask ``where``."""
        if self.needs_first_frames:
            self._potential[slice(None) if where is None else where] = self.normalize(scores)

    def __call__(self, scores: np.ndarray, success: np.ndarray | None = None) -> np.ndarray:
        """Rewards of one step of every sub-env from its ``scores`` (and ``success`` flags, for the bonus)."""
        if self.mode == "raw":
            rewards = scores.copy()
        elif self.mode == "normalized":
            rewards = self.normalize(scores)
        else:
            if np.isnan(self._potential).any():
                raise RuntimeError(
                    "reward_mode='shaped' needs the first frame of the episode: call reset() before step()."
                )
            potential = self.normalize(scores)
            rewards = self.gamma * potential - self._potential
            self._potential = potential
        if success is not None and self.success_bonus:
            rewards = rewards + self.success_bonus * (np.asarray(success) > 0)
        return rewards
