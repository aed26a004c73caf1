"""Benchmark presets: everything a run of the study holds fixed, by name.

Example:
    >>> sorted(PRESETS)
    ['bundled', 'full', 'paper', 'quick', 'tiny']
    >>> PRESETS["quick"].train_collection().tasks[:2]
    ('reach-v3', 'push-v3')
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.data import CollectionConfig
from vlm_reward_wrappers.models import BackboneSpec, TrainableMode
from vlm_reward_wrappers.tasks import ML45_TEST, ML45_TRAIN
from vlm_reward_wrappers.training.pretrain import PretrainConfig
from vlm_reward_wrappers.training.trainer import TrainConfig

SPLITS = ("train-tasks", "held-out-tasks")

VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "zero-shot": ("zero-shot", {}),
    "triplet": ("triplet", {}),  # with cross-task negatives, the default
    "triplet-within-task": ("triplet", {"cross_task_negatives": False}),
    "triplet-failures": ("triplet", {"failure_negatives": True}),  # also ranks success above failed episodes
    "tcn": ("tcn", {}),
    "vip": ("vip", {"goal": "image"}),
    "vip-language": ("vip", {"goal": "language"}),
    "r3m": ("r3m", {}),
    "liv": ("liv", {}),
}
"""The rows of the study: an objective and its options, by name. Each is trained and scored as its own row."""
QUICK_TRAIN_TASKS = (
    "reach-v3",
    "push-v3",
    "button-press-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "door-open-v3",
    "window-open-v3",
    "window-close-v3",
    "plate-slide-v3",
)


@dataclass(frozen=True)
class Preset:
    """Everything a benchmark run holds fixed.

    Args:
        name: the preset's name.
        description: one line on what it runs and how long it takes.
        train_tasks: tasks of every training stage.
        held_out_tasks: tasks no training stage sees (evaluated only).
        train_episodes: training episodes per task.
        eval_episodes: evaluation episodes per task (another collection seed), run to ``episode_steps`` (not
            stopped after success): the states an agent visits, expert, noisy and random.
        image_size: frame size in pixels.
        episode_steps: step limit of a collected episode.
        noise_levels: expert action-noise levels of the training episodes, cycled over episodes.
        eval_noise_levels: expert action-noise levels of the evaluation episodes, cycled over episodes; the
            largest level present in the data is the off-expert probe's "heavy noise" rollout.
        train_random_share: share of random-action training episodes.
        train_steps_after_success: steps a training episode goes on after its first success (the frames of
            the task done and staying done); None runs it to ``episode_steps``.
        eval_random_share: share of random-action evaluation episodes.
        backbone: the backbone (None: the package's own, pretrained on the training data).
        pretrain: pretraining budget of the package's own backbone; one backbone is pretrained per training
            seed (its ``seed`` replaced), so resampling seeds resamples the backbone draw too.
        finetune: finetuning mode of every objective.
        lora_rank: LoRA rank.
        train_steps: training steps of every objective (the cap, when ``train_min_steps`` is set).
        train_min_steps: when set, each objective trains from this step on until its own validation loss has
            flattened (``TrainConfig.min_steps``), up to ``train_steps``: a budget that reaches every row's
            plateau without paying it for the rows that got there early.
        learning_rates: swept for every trained row (on the first seed's backbone, with a head seed past the
            preset's seeds); each row then trains every seed with the rate of its lowest validation loss (its
            own objective's loss on validation episodes of the training tasks, never the evaluation episodes).
            One rate: that rate for every row, without a sweep. (): the finetuning mode's default rate for all.
        batch_size: trajectories per training step.
        eval_every: steps between validations.
        seeds: training seeds.
        objectives: the compared rows, names of :data:`VARIANTS` (an objective with its options).
        num_resamples: bootstrap resamples of the table's intervals and paired differences.
        demonstrations: demonstrations per held-out task that give the task to the demonstration rewards
            (0: none); taken from a collection of their own, never among the evaluation episodes.
        demo_episodes: expert episodes collected per held-out task for that collection.
        adapt_demonstrations: adapt every checkpoint to the held-out tasks on this many demonstrations
            each (``vlm-rewards adapt``), one adapted checkpoint per number; () adapts none.
        adapt_steps: optimisation steps of each adaptation.
    """

    name: str
    description: str
    train_tasks: tuple[str, ...]
    held_out_tasks: tuple[str, ...]
    train_episodes: int
    eval_episodes: int
    image_size: int = 64
    episode_steps: int = 200
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)
    eval_noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 1.0)
    train_random_share: float = 0.1
    train_steps_after_success: int | None = 10
    eval_random_share: float = 0.25
    backbone: BackboneSpec | None = None  # None: the package's own, pretrained with `pretrain`
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: TrainableMode = "lora"
    lora_rank: int = 8
    train_steps: int = 150
    train_min_steps: int | None = None
    learning_rates: tuple[float, ...] = ()
    batch_size: int = 32
    eval_every: int = 50
    seeds: tuple[int, ...] = (0,)
    objectives: tuple[str, ...] = tuple(VARIANTS)
    num_resamples: int = 2000
    demonstrations: int = 1
    demo_episodes: int = 8
    adapt_demonstrations: tuple[int, ...] = (1, 5)
    adapt_steps: int = 100

    def __post_init__(self) -> None:
        check_choices(self)
        unknown = [name for name in self.objectives if name not in VARIANTS]
        if unknown:
            raise ValueError(f"unknown objectives {unknown}; the study's rows are {', '.join(VARIANTS)}")
        if max((self.demonstrations, *self.adapt_demonstrations)) > self.demo_episodes:
            raise ValueError(
                f"demonstrations ({self.demonstrations}) and adapt_demonstrations ({self.adapt_demonstrations}) "
                f"cannot exceed demo_episodes ({self.demo_episodes}), the demonstrations collected per held-out task"
            )

    def pretrain_config(self, seed: int) -> PretrainConfig:
        """The backbone pretraining of training seed ``seed``: the preset's budget with that seed."""
        return dataclasses.replace(self.pretrain, seed=seed)

    @property
    def swept_learning_rates(self) -> tuple[float, ...]:
        """The learning rates the benchmark sweeps per row: none unless there are several to choose among."""
        return self.learning_rates if len(self.learning_rates) > 1 else ()

    def train_config(self, variant: str, seed: int, learning_rate: float | None) -> TrainConfig:
        """The training run of one row of the study: the preset's budget and batches, that seed and rate.

        ``learning_rate=None``: the preset's one learning rate if it has one, else the finetuning mode's default.
        """
        if learning_rate is None and len(self.learning_rates) == 1:
            learning_rate = self.learning_rates[0]
        objective, options = VARIANTS[variant]
        return TrainConfig(
            objective=objective,
            objective_options=options,
            finetune=self.finetune,
            lora_rank=self.lora_rank,
            batch_size=self.batch_size,
            max_steps=self.train_steps,
            min_steps=self.train_min_steps,
            learning_rate=learning_rate,
            eval_every=self.eval_every,
            seed=seed,
            tasks=self.train_tasks,
        )

    def train_collection(self) -> CollectionConfig:
        return CollectionConfig(
            tasks=self.train_tasks,
            episodes_per_task=self.train_episodes,
            noise_levels=self.noise_levels,
            random_share=self.train_random_share,
            image_size=self.image_size,
            max_steps=self.episode_steps,
            steps_after_success=self.train_steps_after_success,
            seed=0,
        )

    def demo_collection(self) -> CollectionConfig:
        """Expert demonstrations of the held-out tasks (no action noise; a seed of their own)."""
        return CollectionConfig(
            tasks=self.held_out_tasks,
            episodes_per_task=self.demo_episodes,
            noise_levels=(0.0,),
            random_share=0.0,
            image_size=self.image_size,
            max_steps=max(self.episode_steps, 200),  # long enough for the experts to succeed
            seed=2000,
        )

    def eval_collection(self) -> CollectionConfig:
        return CollectionConfig(
            tasks=self.train_tasks + self.held_out_tasks,
            episodes_per_task=self.eval_episodes,
            noise_levels=self.eval_noise_levels,
            random_share=self.eval_random_share,
            image_size=self.image_size,
            max_steps=self.episode_steps,
            steps_after_success=None,
            seed=1000,
        )


QUICK = Preset(
    name="quick",
    description="9 training tasks (two same-scene pairs), the 5 ML45 test tasks held out; 64-px frames; one "
    "backbone per seed, frozen, with residual heads on cached features; learning rates swept; 3 seeds; 20 "
    "full-length evaluation episodes per task; held-out tasks also given by 1 demonstration (no adaptation: "
    "preset full adapts)",
    train_tasks=QUICK_TRAIN_TASKS,
    held_out_tasks=ML45_TEST,
    train_episodes=10,
    eval_episodes=20,
    train_random_share=0.2,
    train_steps_after_success=50,
    pretrain=PretrainConfig(max_steps=200, batch_size=96),  # chosen on validation: benchmarks/backbone_probe.py
    finetune="heads",
    train_steps=1800,
    train_min_steps=600,
    learning_rates=(3e-4, 1e-3, 3e-3),
    eval_every=50,
    seeds=(0, 1, 2),
    adapt_demonstrations=(),
)
"""The ``quick`` preset: the study in about 20 minutes on a 2-core CPU."""

PRESETS: dict[str, Preset] = {
    "quick": QUICK,
    "bundled": dataclasses.replace(
        QUICK,
        name="bundled",
        description="the package's bundled reward model (vlm-rewards bundle): quick's settings on all 45 ML45 "
        "training tasks, one seed, the rows zero-shot, triplet and triplet-failures; 10 full-length evaluation "
        "episodes per task, the 5 ML45 test tasks held out; about 30 minutes on a 2-core CPU",
        train_tasks=ML45_TRAIN,
        eval_episodes=10,
        seeds=(0,),
        objectives=("zero-shot", "triplet", "triplet-failures"),
    ),
    "full": Preset(
        name="full",
        description="all 45 ML45 training tasks, the 5 ML45 test tasks held out; 300-step episodes; one backbone "
        "per seed, frozen, with residual heads on cached features; learning rates swept and budgets to each row's "
        "plateau as in quick; 3 seeds; held-out tasks also given by 1 demonstration and adapted on 1 and 5; about "
        "100 minutes on a 2-core CPU",
        train_tasks=ML45_TRAIN,
        held_out_tasks=ML45_TEST,
        train_episodes=16,
        eval_episodes=4,
        episode_steps=300,
        # quick's setting, chosen on validation, with steps for about the same passes over the training frames
        # (1500 x 96 over 91,709 frames: 1.57; quick: 200 x 96 over 12,483: 1.54)
        pretrain=PretrainConfig(max_steps=1500, batch_size=96),
        finetune="heads",
        train_steps=QUICK.train_steps,
        train_min_steps=QUICK.train_min_steps,
        learning_rates=QUICK.learning_rates,
        eval_every=QUICK.eval_every,
        seeds=(0, 1, 2),
    ),
    "paper": Preset(
        name="paper",
        description="SigLIP2 ViT-B-16 with LoRA at 224 px, all ML45 tasks, 3 seeds; for a GPU and the SigLIP2 weights",
        train_tasks=ML45_TRAIN,
        held_out_tasks=ML45_TEST,
        train_episodes=16,
        eval_episodes=4,
        image_size=224,
        episode_steps=300,
        backbone=BackboneSpec("ViT-B-16-SigLIP2", pretrained="webli"),
        lora_rank=16,
        train_steps=2000,
        eval_every=250,
        seeds=(0, 1, 2),
    ),
    "tiny": Preset(
        name="tiny",
        description="a smoke test: 2 tasks, 1 held out, a 32-px nano backbone, a few steps",
        train_tasks=("reach-v3", "button-press-v3"),
        held_out_tasks=("door-lock-v3",),
        train_episodes=3,
        eval_episodes=2,
        image_size=32,
        episode_steps=60,
        train_random_share=0.34,
        eval_random_share=0.5,
        pretrain=PretrainConfig(model="vlmrw-nano", max_steps=4, batch_size=16),
        finetune="heads",
        train_steps=4,
        learning_rates=(1e-3, 3e-3),
        batch_size=8,
        eval_every=2,
        seeds=(0, 1),
        objectives=("zero-shot", "triplet", "tcn"),
        demo_episodes=1,
        adapt_demonstrations=(1,),
        adapt_steps=2,
    ),
}
