"""``vlm-rewards adapt``: finetune a checkpoint on a few demonstrations of new tasks, with its own objective.

The checkpoint's objective (and its options), finetuning mode and backbone
are kept; training starts from its weights and runs on the first ``k``
successful expert episodes of each new task in the demonstrations' dataset
(the same ones :func:`~vlm_reward_wrappers.models.demonstration.dataset_demonstrations`
picks), then keeps the final weights (with one or a
few demonstrations there is nothing to validate on). The result is a new
checkpoint folder that knows the new tasks' sentences and stores their goal
images. Like ``train``, an interrupted run resumes when called again.

Example:
    >>> config = AdaptConfig(tasks=("door-lock-v3",), demonstrations=1)
    >>> checkpoint = "runs/quick/checkpoints/triplet-seed0"
    >>> model = adapt(checkpoint, "runs/quick/data/demos", "runs/adapted", config)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.models import RewardModel, read_checkpoint_config
from vlm_reward_wrappers.models.demonstration import dataset_demonstrations
from vlm_reward_wrappers.tasks import expand_tasks
from vlm_reward_wrappers.training.trainer import TrainConfig, train


@dataclass(frozen=True)
class AdaptConfig:
    """Few-shot adaptation of a checkpoint.

    Args:
        tasks: the new tasks (default: every task of the demonstrations' dataset).
        demonstrations: demonstrations per task to adapt on: the first successful expert episodes of the dataset.
        max_steps: optimisation steps.
        batch_size: trajectories per step.
        learning_rate: AdamW learning rate (default: the finetuning mode's).
        seed: seeds the batches.
    """

    tasks: tuple[str, ...] | None = None
    demonstrations: int = 1
    max_steps: int = 100
    batch_size: int = 16
    learning_rate: float | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.demonstrations < 1 or self.max_steps < 1 or self.batch_size < 1:
            raise ValueError("demonstrations, max_steps and batch_size must be >= 1")

    def train_config(self, checkpoint: str | os.PathLike, tasks: tuple[str, ...]) -> TrainConfig:
        """The training run that adapts ``checkpoint`` to ``tasks``."""
        model_config = read_checkpoint_config(checkpoint)[0]
        options = dict(model_config.objective)
        name = options.pop("name")
        mode = model_config.finetune.mode
        return TrainConfig(
            objective=name,
            objective_options=options,
            finetune="heads" if mode == "frozen" else mode,
            lora_rank=model_config.finetune.rank,
            batch_size=self.batch_size,
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            eval_every=max(1, self.max_steps // 4),  # resumable saves; nothing is validated (no held-out demos)
            val_fraction=0.0,
            seed=self.seed,
            tasks=tasks,
            select_by="final",
            episodes_per_task=self.demonstrations,
            init_from=str(checkpoint),
        )


def adapt(
    checkpoint: str | os.PathLike,
    demonstrations: str | os.PathLike,
    out: str | os.PathLike,
    config: AdaptConfig = AdaptConfig(),
    *,
    device: str | None = None,
    progress: bool = True,
) -> RewardModel:
    """Adapt ``checkpoint`` to the tasks of the ``demonstrations`` dataset folder; write the new checkpoint to ``out``.

    A task with fewer successful demonstrations than asked raises ``ValueError`` naming it.
    """
    dataset = DemoDataset(demonstrations)
    tasks = expand_tasks(config.tasks) if config.tasks else tuple(dataset.tasks)
    dataset_demonstrations(dataset, tasks, config.demonstrations)  # each task has them, or a clear error
    model_config = read_checkpoint_config(checkpoint)[0]
    return train(
        config.train_config(checkpoint, tuple(tasks)),
        demonstrations,
        out,
        backbone=model_config.backbone,
        device=device,
        progress=progress,
    )
