"""A task given by demonstrations instead of a sentence: goal-image and progress-along-demonstration rewards.

A user with a new task usually has a demonstration of it. Two rewards come from one:

* ``progress``: how far along the demonstration a frame is. The frame's
  ``neighbours`` nearest demonstration frames (cosine of the model's image
  embeddings, frames up to the first success) each have a demonstration time
  ``t / first_success`` in [0, 1]; the reward is their mean. Several
  demonstrations pool their frames.
* ``goal-image``: the cosine to the mean embedding of the demonstrations'
  frames from their first success on (the goal-image reward of TCN and VIP).

Both need only the model's image embeddings, so every checkpoint can use them,
including for tasks whose sentence it never read.

Example:
    >>> demo = Demonstration.from_frames(np.zeros((5, 8, 8, 3), np.uint8))  # the last frame shows the task done
    >>> demo.first_success, len(demo)
    (4, 5)
    >>> Demonstration.from_frames(np.zeros((0, 8, 8, 3), np.uint8))
    Traceback (most recent call last):
    ...
    ValueError: demonstration frames has no frames: give the frames of an episode that does the task
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np
import torch
from torch import nn

from vlm_reward_wrappers.models.config import RewardModelConfig

if TYPE_CHECKING:
    from vlm_reward_wrappers.data.storage import DemoDataset

DemoReward = Literal["progress", "goal-image"]
"""``progress``: demonstration time of the nearest demonstration frames; ``goal-image``: cosine to its final frames."""

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True, eq=False)
class Demonstration:
    """The frames of one demonstration of a task, and where in them the task is first done.

    Args:
        frames: ``(T, H, W, 3)`` uint8 frames, in order.
        first_success: index of the first frame that shows the task done.
        name: what the demonstration is, for messages.
        origin: the episode file it comes from (resolved path), when it comes from a dataset, so that
            an evaluation can refuse to score it.
        camera: the camera it was rendered from, when known.
    """

    frames: np.ndarray
    first_success: int
    name: str = "demonstration"
    origin: str | None = None
    camera: str | None = None

    def __post_init__(self) -> None:
        frames = np.asarray(self.frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(
                f"demonstration {self.name} must be uint8 frames (T, H, W, 3); got {frames.dtype} {frames.shape}"
            )
        if len(frames) == 0:
            raise ValueError(
                f"demonstration {self.name} has no frames: give the frames of an episode that does the task"
            )
        if not 0 <= self.first_success < len(frames):
            raise ValueError(
                f"demonstration {self.name} never succeeds (first success {self.first_success} of {len(frames)} "
                "frames): a demonstration must show the task done; choose an episode that succeeds."
            )

    def __len__(self) -> int:
        return len(self.frames)

    @property
    def image_size(self) -> int:
        return int(self.frames.shape[1])

    @classmethod
    def from_frames(cls, frames: np.ndarray, first_success: int | None = None, name: str = "frames") -> Demonstration:
        """A demonstration from frames; ``first_success`` None means the last frame shows the task done."""
        frames = np.asarray(frames)
        return cls(frames, len(frames) - 1 if first_success is None else first_success, name)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> Demonstration:
        """A demonstration from a folder of image files, in name order; the last one shows the task done."""
        from PIL import Image

        paths = sorted(path for path in Path(folder).iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        if not paths:
            raise ValueError(f"demonstration folder {folder} holds no {', '.join(IMAGE_SUFFIXES)} images")
        frames = []
        for path in paths:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        if len({frame.shape for frame in frames}) > 1:
            raise ValueError(f"the images of demonstration folder {folder} differ in size")
        return cls(np.stack(frames), len(frames) - 1, str(folder))

    @classmethod
    def from_dataset(cls, dataset: DemoDataset, episode: int) -> Demonstration:
        """Episode ``episode`` (an index into ``dataset.episodes``) of a collected dataset."""
        info = dataset.episodes[episode]
        return cls(
            dataset.read_frames(episode),
            info.first_success_step,
            f"{info.task} episode {info.path.name} of {Path(dataset.root).name}",  # no absolute path in reports
            str(Path(info.path).resolve()),
            dataset.camera,
        )


def dataset_demonstrations(
    dataset: DemoDataset, tasks: Sequence[str] | None = None, per_task: int = 1
) -> dict[str, list[Demonstration]]:
    """The first ``per_task`` successful expert episodes of each task of a dataset, as demonstrations.

    A task without that many raises ``ValueError`` naming it.
    """
    chosen: dict[str, list[Demonstration]] = {}
    for task in tasks if tasks is not None else dataset.tasks:
        episodes = [i for i, info in enumerate(dataset.episodes) if info.task == task and info.is_successful_expert]
        if len(episodes) < per_task:
            raise ValueError(
                f"{dataset.root} holds {len(episodes)} successful expert episodes of {task}; {per_task} are needed "
                f"as demonstrations. Collect more: vlm-rewards collect --tasks {task} ..."
            )
        chosen[task] = [Demonstration.from_dataset(dataset, i) for i in episodes[:per_task]]
    return chosen


class ImageEncoder(Protocol):
    """What a demonstration goal needs of a model: its config and image embeddings (a ``RewardModel``)."""

    config: RewardModelConfig
    training: bool

    def encode_images(self, frames: np.ndarray) -> torch.Tensor: ...

    def eval(self) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...


class DemonstrationGoal:
    """A reward for the task of some demonstrations, from a model's image embeddings (see the module docstring).

    Build it with :func:`demonstration_goal`; give it to :meth:`RewardModel.reward_from_features` as the goal.
    ``reward_stats`` are the mean and std of the reward over the demonstrations' own frames (for ``normalized``).
    """

    def __init__(
        self,
        kind: DemoReward,
        embeddings: torch.Tensor,
        times: torch.Tensor,
        goal: torch.Tensor,
        neighbours: int,
        origins: Sequence[str] = (),
    ) -> None:
        self.kind = kind
        self.embeddings = embeddings
        self.times = times
        self.goal = goal
        self.neighbours = min(neighbours, len(times))
        self.origins = list(origins)
        """The episode files of the demonstrations that came from a dataset (an evaluation never scores them)."""
        self.reward_stats = {"mean": 0.0, "std": 1.0}

    def rewards(self, image_features: torch.Tensor) -> torch.Tensor:
        """Rewards ``(B,)`` of unnormalised image embeddings ``(B, D)``."""
        features = nn.functional.normalize(image_features, dim=-1)
        if self.kind == "goal-image":
            return features @ self.goal.to(features)
        similarity = features @ self.embeddings.to(features).T
        nearest = similarity.topk(self.neighbours, dim=-1).indices
        return self.times.to(features)[nearest].mean(dim=-1)


@torch.no_grad()
def demonstration_goal(
    model: ImageEncoder,
    demonstrations: Demonstration | Sequence[Demonstration],
    kind: DemoReward = "progress",
    *,
    neighbours: int = 3,
    batch_size: int = 256,
) -> DemonstrationGoal:
    """The reward of ``model`` for the task the demonstrations show.

    Demonstrations rendered at another size or camera than the model's training
    frames are refused with the difference named (their embeddings would not
    mean what the model learned).
    """
    demos = [demonstrations] if isinstance(demonstrations, Demonstration) else list(demonstrations)
    if not demos:
        raise ValueError("give at least one demonstration")
    if kind not in ("progress", "goal-image"):
        raise ValueError(f"kind must be 'progress' or 'goal-image'; got {kind!r}")
    for demo in demos:
        problems = model.config.frame_mismatches(demo.camera or model.config.camera, demo.image_size)
        if problems:
            raise ValueError(
                f"demonstration {demo.name}: {'; '.join(problems)}. Render it with the checkpoint's camera "
                f"{model.config.camera!r} at {model.config.image_size} px."
            )
    was_training = model.training
    model.eval()
    try:
        embedded = [
            nn.functional.normalize(
                torch.cat(
                    [model.encode_images(d.frames[i : i + batch_size]) for i in range(0, len(d), batch_size)]
                ).float(),
                dim=-1,
            )
            for d in demos
        ]
    finally:
        model.train(was_training)
    until_success = torch.cat([e[: d.first_success + 1] for e, d in zip(embedded, demos, strict=True)])
    times = torch.cat([torch.arange(d.first_success + 1, dtype=torch.float32) / max(d.first_success, 1) for d in demos])
    done = torch.cat([e[d.first_success :] for e, d in zip(embedded, demos, strict=True)])
    goal = nn.functional.normalize(done.mean(dim=0), dim=-1)
    origins = [demo.origin for demo in demos if demo.origin is not None]
    result = DemonstrationGoal(kind, until_success, times.to(until_success.device), goal, neighbours, origins)
    own = result.rewards(torch.cat(embedded)).double()
    result.reward_stats = {"mean": float(own.mean()), "std": float(own.std()) if len(own) > 1 else 1.0}
    return result
