"""What a reward model is: backbone, adapter, objective and the frames it was trained on (its ``config.json``).

Example:
    >>> config = RewardModelConfig(goal_texts={"reach-v3": "reach the goal"}, camera="corner", image_size=64)
    >>> config.goal_for("reach-v3"), config.goal_for("door-open-v3")
    ('reach the goal', 'open the door')
    >>> config.frame_mismatches("corner", 32)
    ['frames are 32-px, the model was trained on 64-px frames']
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from vlm_reward_wrappers.models.adapters import FinetuneConfig
from vlm_reward_wrappers.models.backbone import BackboneSpec
from vlm_reward_wrappers.rendering import DEFAULT_CAMERA
from vlm_reward_wrappers.tasks import DEFAULT_BASELINE_TEXT, goal_text, resolve_task


@dataclass
class RewardModelConfig:
    """Everything needed to rebuild a reward model (stored as ``config.json``).

    Args:
        backbone: the open_clip model and its weights.
        finetune: how the backbone is adapted.
        objective: the objective's name and hyper-parameters (``Objective.config()``).
        goal_texts: the goal sentence of each training task; scoring a task uses
            this sentence, so a checkpoint keeps rewarding what it was trained on.
        baseline_text: the baseline sentence of objectives that use one (VLM-RM).
        camera: camera of the training frames.
        image_size: size of the training frames in pixels.
        reward_stats: mean and std of the model's sentence rewards on its training frames.
        goal_image_tasks: the training tasks whose goal-image embedding the checkpoint stores
            (the mean embedding of the frames from first success on of the task's successful
            training trajectories), in the order of the stored tensor.
        image_reward_stats: mean and std of the model's goal-image rewards on its training frames.
        progress_calibration: per kind of goal (``sentence``, ``image``) and training task, the two scores
            ``[zero, one]`` that the ``progress`` reward maps to 0 and 1: the 5th percentile of the task's
            first frames and the 95th percentile of its success frames, on the training episodes
            (:mod:`vlm_reward_wrappers.training.calibration`). Empty in checkpoints written before it existed.
        training: what the trainer records about the run (config, history, best step).
    """

    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "triplet"})
    goal_texts: dict[str, str] = field(default_factory=dict)
    baseline_text: str = DEFAULT_BASELINE_TEXT
    camera: str = DEFAULT_CAMERA
    image_size: int = 64
    reward_stats: dict[str, float] = field(default_factory=lambda: {"mean": 0.0, "std": 1.0})
    goal_image_tasks: list[str] = field(default_factory=list)
    image_reward_stats: dict[str, float] = field(default_factory=lambda: {"mean": 0.0, "std": 1.0})
    progress_calibration: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)

    def problems(self) -> list[str]:
        """What is wrong with these values, each naming its field (empty: nothing). A ``config.json`` may come from
        anyone; a loader refuses one with problems rather than scoring with them.

        >>> RewardModelConfig(image_size=0, reward_stats={"mean": 0.0, "std": 0.0}).problems()
        ['image_size must be a positive integer, not 0', 'reward_stats.std must be a positive number, not 0.0']
        """
        found = []
        if isinstance(self.image_size, bool) or not isinstance(self.image_size, int) or self.image_size < 1:
            found.append(f"image_size must be a positive integer, not {self.image_size!r}")
        if not isinstance(self.camera, str) or not self.camera:
            found.append(f"camera must be a camera name, not {self.camera!r}")
        for name in ("reward_stats", "image_reward_stats"):
            stats = getattr(self, name)
            for key in ("mean", "std"):
                value = stats.get(key) if isinstance(stats, dict) else None
                number = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
                if not number or (key == "std" and float(value or 0) <= 0):
                    kind = "a positive number" if key == "std" else "a finite number"
                    found.append(f"{name}.{key} must be {kind}, not {value!r}")
        if not all(isinstance(text, str) and text.strip() for text in self.goal_texts.values()):
            found.append("goal_texts must map each task to a sentence")
        untold = sorted(set(self.training.get("tasks", [])) - set(self.goal_texts))
        if untold:
            found.append(f"goal_texts has no sentence for the trained task(s) {', '.join(untold)}")
        for kind, tasks in self.progress_calibration.items():
            for task, pair in tasks.items():
                numbers = isinstance(pair, list) and len(pair) == 2 and all(isinstance(v, int | float) for v in pair)
                if not numbers or not all(math.isfinite(value) for value in pair):
                    found.append(f"progress_calibration.{kind}.{task} must be two finite scores, not {pair!r}")
        return found

    def goal_for(self, task: str) -> str:
        """The goal sentence of a Meta-World task: the one this model trained with, else the package's."""
        name = resolve_task(task)
        return self.goal_texts.get(name) or goal_text(name)

    def frame_mismatches(self, camera: str, image_size: int) -> list[str]:
        """How frames of ``camera`` and ``image_size`` differ from the training frames (empty: they do not)."""
        problems = []
        if camera != self.camera:
            problems.append(f"frames are from camera {camera!r}, the model was trained on {self.camera!r} frames")
        if image_size != self.image_size:
            problems.append(f"frames are {image_size}-px, the model was trained on {self.image_size}-px frames")
        return problems


def warn_if_unlike_training(
    config: RewardModelConfig, camera: str, image_size: int, *, where: str, stacklevel: int = 3
) -> list[str]:
    """Warn once per difference between these frames and the training frames; return the differences.

    ``where`` names the frames' source (a dataset, an env) and the model in the message.
    """
    problems = config.frame_mismatches(camera, image_size)
    for problem in problems:
        warnings.warn(
            f"{where}: {problem}; its rewards may not mean what they mean on its training frames. "
            "Render with the checkpoint's camera and size (the wrappers do unless camera= or image_size= is given).",
            UserWarning,
            stacklevel=stacklevel,
        )
    return problems
