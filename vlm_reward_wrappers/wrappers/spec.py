"""What every reward wrapper takes, declared once: :class:`RewardSpec` (reward) and :class:`FrameSettings` (frames).

The three reward wrappers (:class:`~vlm_reward_wrappers.VLMRewardWrapper`,
:class:`~vlm_reward_wrappers.VectorVLMReward`, :class:`~vlm_reward_wrappers.VLMRewardVecEnv`)
take a checkpoint and the options below as keywords, or a ready ``RewardSpec``;
a new option is one new field here.

Example:
    >>> spec = RewardSpec.of("runs/quick/checkpoints/triplet-seed0", reward_mode="shaped", gamma=0.98)
    >>> spec.reward_mode, spec.goal
    ('shaped', None)
    >>> RewardSpec.of("ckpt", reward_mod="shaped")
    Traceback (most recent call last):
    ...
    TypeError: unknown reward option 'reward_mod' (did you mean 'reward_mode'?); the options are goal, ...
"""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, Demonstration, DemoReward

RewardMode = Literal["raw", "normalized", "progress", "shaped", "shaped-progress"]
"""``raw``: the model score; ``normalized``: ``(score - mean) / std`` with the checkpoint's reward statistics;
``progress``: per-task progress in [0, 1] from the checkpoint's calibration; ``shaped``: ``gamma * phi(o') - phi(o)``
with ``phi`` the normalized score; ``shaped-progress``: the same with ``phi`` the progress."""

CALIBRATED_MODES: tuple[RewardMode, ...] = ("progress", "shaped-progress")
"""The reward modes that need the task's progress calibration (stored in the checkpoint)."""


@dataclass(frozen=True, eq=False)
class RewardSpec:
    """The learned reward a wrapper gives.

    Args:
        checkpoint: path of a checkpoint folder (``RewardModel.save_pretrained``) or a Hub repo id
            (``user/name[@revision]``); the model is loaded once per process and device and shared by all
            wrappers. Not given: the package's bundled model (:data:`~vlm_reward_wrappers.models.BUNDLED_CHECKPOINT`).
        goal: the goal sentence; default: the Meta-World task's native goal as the checkpoint stores it
            (the goal image for objectives that train one, like TCN, else the goal sentence).
        goal_image: the goal as frames (an image goal): an image file, one uint8 frame ``(H, W, 3)`` or
            several ``(N, H, W, 3)``; the reward is the cosine to their mean embedding. For tasks the
            checkpoint holds no goal image for.
        demonstration: the task as demonstrations, for tasks the checkpoint has no sentence or goal image
            for: frames ``(T, H, W, 3)`` of an episode that ends with the task done, a folder of its frames
            (image files in name order), a :class:`~vlm_reward_wrappers.models.Demonstration`, or a list of them.
        demo_reward: the reward a demonstration gives: ``progress`` (how far along the demonstration the
            frame is, from its nearest demonstration frames) or ``goal-image`` (cosine to its final frames).
        reward_mode: ``raw`` (the model score), ``normalized`` (``(score - mean) / std``
            with the checkpoint's reward statistics, pooled over its training tasks), ``progress``
            (``clip((score - zero) / (one - zero), 0, 1)`` with the task's calibration stored in the
            checkpoint: 0 at a typical first frame, 1 at the best success frames; for a Meta-World
            training task's own goal), ``shaped`` (``gamma * phi(o') - phi(o)``, ``phi`` the
            normalized score, ``phi(o_0)`` from the reset frame) or ``shaped-progress`` (the same with ``phi``
            the progress: over an episode it sums to about the progress gained, so holding a pose pays nothing).
        gamma: discount of the shaped reward (use the agent's).
        reward_scale: multiplies the reward of ``reward_mode`` (e.g. ``reward_scale=0.5`` with ``progress`` and
            ``success_bonus=1``: ``1 + 0.5 * progress`` at most, so success outweighs any progress without it).
        success_bonus: added to the (scaled) reward on steps where ``info["success"]`` is true.
        device: where the model runs (``cpu``, ``cuda``).
    """

    checkpoint: str
    goal: str | None = None
    goal_image: np.ndarray | str | None = None
    demonstration: Any = None
    demo_reward: DemoReward = "progress"
    reward_mode: RewardMode = "raw"
    gamma: float = 0.99
    reward_scale: float = 1.0
    success_bonus: float = 0.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "checkpoint", os.fspath(self.checkpoint))
        object.__setattr__(self, "device", str(self.device))
        if self.goal is not None and not self.goal.strip():
            raise ValueError(
                "goal is empty: pass a sentence such as goal='open the door', or leave goal=None for a "
                "Meta-World task's own goal."
            )
        if not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"gamma must be in (0, 1] (the agent's discount factor); got {self.gamma}.")
        for name in ("reward_scale", "success_bonus"):
            if not np.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be a finite number; got {getattr(self, name)}.")
        given = [name for name in ("goal", "goal_image", "demonstration") if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"give one of goal (a sentence), goal_image or demonstration, not {' and '.join(given)}")
        if self.demonstration is not None:
            object.__setattr__(self, "demonstration", demonstrations(self.demonstration))
        if self.goal_image is not None:
            object.__setattr__(self, "goal_image", goal_frames(self.goal_image))

    @classmethod
    def of(cls, checkpoint: str | os.PathLike | RewardSpec | None = None, **options: Any) -> RewardSpec:
        """A spec from a checkpoint path (None: the bundled model) and keyword options, or a given spec with
        options replaced."""
        names = [field.name for field in dataclasses.fields(cls) if field.name != "checkpoint"]
        for option in options:
            if option not in names:
                close = difflib.get_close_matches(option, names, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise TypeError(f"unknown reward option {option!r}{hint}; the options are {', '.join(names)}")
        if isinstance(checkpoint, RewardSpec):
            return dataclasses.replace(checkpoint, **options)
        return cls(checkpoint=os.fspath(BUNDLED_CHECKPOINT if checkpoint is None else checkpoint), **options)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RewardSpec):
            return NotImplemented
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        same_image = np.array_equal(mine.pop("goal_image"), theirs.pop("goal_image"))  # arrays: == is elementwise
        same_demos = self.demonstration is other.demonstration or (
            self.demonstration is not None
            and other.demonstration is not None
            and len(self.demonstration) == len(other.demonstration)
            and all(
                np.array_equal(a.frames, b.frames) and a.first_success == b.first_success
                for a, b in zip(self.demonstration, other.demonstration, strict=True)
            )
        )
        mine.pop("demonstration"), theirs.pop("demonstration")
        return same_image and same_demos and mine == theirs

    __hash__ = None  # type: ignore[assignment]  # mutable contents (an array): not hashable

    def to_record(self) -> dict[str, Any]:
        """The spec as plain keyword values (what gymnasium's ``RecordConstructorArgs`` stores)."""
        return dataclasses.asdict(self)


def goal_frames(value: np.ndarray | str | os.PathLike) -> np.ndarray:
    """Goal frames ``(N, H, W, 3)`` uint8 from an image file, one frame or several; a clear error otherwise.

    >>> goal_frames(np.zeros((8, 8, 3), np.uint8)).shape
    (1, 8, 8, 3)
    >>> goal_frames(np.zeros((8, 8), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: goal_image must be an image file, a uint8 frame (H, W, 3) or frames (N, H, W, 3); got uint8 (8, 8)
    """
    if isinstance(value, (str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(value) as image:
                return np.asarray(image.convert("RGB"), dtype=np.uint8)[None]
        except (FileNotFoundError, UnidentifiedImageError, OSError) as error:
            raise ValueError(f"goal_image {value} cannot be read as an image: {error}") from error
    frames = np.asarray(value)
    if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3 or 0 in frames.shape:
        raise ValueError(
            "goal_image must be an image file, a uint8 frame (H, W, 3) or frames (N, H, W, 3); "
            f"got {frames.dtype} {frames.shape}"
        )
    return frames[None] if frames.ndim == 3 else frames


def demonstrations(value: Any) -> tuple[Demonstration, ...]:
    """Demonstrations from frames ``(T, H, W, 3)``, a folder of frames, a :class:`Demonstration`, or a list of them.

    >>> [len(demo) for demo in demonstrations(np.zeros((4, 8, 8, 3), np.uint8))]
    [4]
    >>> demonstrations(np.zeros((8, 8, 3), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: demonstration frames must be uint8 frames (T, H, W, 3); got uint8 (8, 8, 3)
    """
    if isinstance(value, Demonstration):
        return (value,)
    if isinstance(value, (str, os.PathLike)):
        return (Demonstration.from_folder(value),)
    if isinstance(value, (list, tuple)):
        return tuple(demo for item in value for demo in demonstrations(item))
    return (Demonstration.from_frames(np.asarray(value)),)


@dataclass(frozen=True)
class FrameSettings:
    """What a wrapped env's frames show: which Meta-World task (if any), from which camera, at what size.

    Args:
        task: the Meta-World task of the env (None for other envs).
        camera: the camera frames are rendered from.
        image_size: frame width and height in pixels.
    """

    task: str | None
    camera: str
    image_size: int
