"""What an RL sweep holds fixed: tasks, reward sources, seeds, budget and SAC's settings, with named presets.

Every reward source of a task gets the same agent settings: SB3's SAC
defaults (Haarnoja et al. 2018, as SB3 ships them: learning rate 3e-4, batch
256, tau 0.005, gamma 0.99, one gradient step per env step, two 256-unit
layers, automatic entropy tuning) except two, both so that short runs fit a CPU:
1000 random steps before learning (SB3: 100) and a replay buffer as large as the
run (SB3: one million, all of it pickled on every save).

Example:
    >>> sorted(RL_PRESETS)
    ['full', 'quick', 'tiny']
    >>> RL_PRESETS["quick"].sources
    ('bundled+sparse', 'sparse', 'gt')
    >>> RL_PRESETS["quick"] == RLConfig()
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from vlm_reward_wrappers.configs import check_choices, check_device
from vlm_reward_wrappers.tasks import MT10, resolve_task

LearnedRewardMode = Literal["progress", "shaped-progress", "normalized"]
"""How a learned source turns scores into rewards (a :class:`~vlm_reward_wrappers.wrappers.RewardSpec` mode)."""

DEFAULT_LEARNED_REWARD_MODE: LearnedRewardMode = "shaped-progress"
"""A learned source's mode unless one is given: chosen over ``progress`` on a task outside every preset's
(button-press-topdown, 2 agent seeds; docs/rl.md, "Choosing the learned reward's mode")."""


@dataclass(frozen=True)
class RLConfig:
    """An RL sweep: SAC on Meta-World state observations, for every task x reward source x seed.

    Args:
        tasks: Meta-World tasks (e.g. ``drawer-close-v3``).
        sources: reward sources: ``gt``, ``sparse``, ``bundled`` (the package's model), a checkpoint folder, a row
            of the offline benchmark (``triplet``: its checkpoint of the run's seed, see ``benchmark``), a Hub repo
            id in the local Hub cache (``user/name``, ``user/name@revision``), or any of these with ``+sparse``.
        seeds: agent seeds of the learned and sparse sources.
        gt_seeds: agent seeds of ``gt``, the reference (none given: ``seeds``).
        total_steps: env steps per run.
        eval_freq: env steps between evaluations (and saves); a multiple of max_episode_steps.
        eval_episodes: evaluation episodes, deterministic actions, seeds never used in training.
        max_episode_steps: episode length (Meta-World's own: 500).
        success_bonus: the reward of a success step in ``sparse`` and ``+sparse`` sources (10: the most Meta-World's
            reward pays in a step, so every source shares its scale).
        gt_reward_scale: multiplies Meta-World's reward in ``gt``.
        learned_reward_mode: a learned source's reward: ``shaped-progress`` (the default: potential-based shaping of
            the checkpoint's per-task progress p in [0, 1], ``gamma * p(o') - p(o)``: an episode collects about the
            progress it gains, so holding a pose the reward model overrates pays nothing), ``progress`` (p itself,
            the default until the choice on button-press-topdown) or ``normalized`` (the pooled z-score of earlier
            versions).
        learned_reward_scale: multiplies a learned source's reward: ``CKPT+sparse`` is ``success_bonus * success +
            learned_reward_scale * (gamma * p(o') - p(o))`` (default 10 and 5: ``success + 0.5 * shaped progress``
            on Meta-World's scale), so a success step pays more than any step without success.
        camera: render the frames a learned reward scores from this camera (default: the checkpoint's; another
            one gives a warning that reaches the report).
        image_size: render those frames at this size (default: the checkpoint's).
        benchmark: the offline benchmark folder whose checkpoints rows like ``triplet`` name.
        learning_rate: SAC learning rate (actor, critics, entropy coefficient).
        batch_size: SAC minibatch size.
        learning_starts: random-action steps before learning starts.
        tau: target-network update rate.
        gamma: discount factor.
        net_arch: hidden layer sizes of actor and critics.
        gradient_steps: gradient steps per env step.
        jobs: runs in parallel, one process each (default: the CPU count).
        reward_worker: render frames in a second process per learned-reward run, beside the agent's updates
            (``auto``: when the sweep leaves a core per worker free, e.g. a single run).
        device: where the agent and reward model run (``cpu``, ``cuda``).
        wandb: also log every run to this Weights & Biases project (the ``wandb`` extra; its TensorBoard logs,
            mirrored; ``WANDB_MODE=offline`` keeps them on disk). Not part of a run's identity.
    """

    tasks: tuple[str, ...] = ("reach-v3", "button-press-v3", "drawer-close-v3")
    sources: tuple[str, ...] = ("bundled+sparse", "sparse", "gt")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    gt_seeds: tuple[int, ...] | None = None
    total_steps: int = 30_000
    eval_freq: int = 5_000
    eval_episodes: int = 10
    max_episode_steps: int = 200
    success_bonus: float = 10.0
    gt_reward_scale: float = 1.0
    learned_reward_mode: LearnedRewardMode = DEFAULT_LEARNED_REWARD_MODE
    learned_reward_scale: float = 5.0
    camera: str | None = None
    image_size: int | None = None
    benchmark: str = "runs/quick"
    learning_rate: float = 3e-4
    batch_size: int = 256
    learning_starts: int = 1_000
    tau: float = 0.005
    gamma: float = 0.99
    net_arch: tuple[int, ...] = (256, 256)
    gradient_steps: int = 1
    jobs: int | None = None
    reward_worker: Literal["auto", "on", "off"] = "auto"
    device: str = "cpu"
    wandb: str | None = None

    def __post_init__(self) -> None:
        check_choices(self)
        object.__setattr__(self, "tasks", tuple(resolve_task(task) for task in self.tasks))
        counts = ("max_episode_steps", "eval_episodes", "batch_size", "gradient_steps")
        scales = ("learning_rate", "gt_reward_scale", "learned_reward_scale")
        for name in counts + scales + (("jobs",) if self.jobs is not None else ()):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")
        if self.learning_starts < 0 or not 0 < self.gamma <= 1 or not 0 < self.tau <= 1:
            raise ValueError("learning_starts must be >= 0, gamma and tau in (0, 1]")
        check_device(self.device)
        if self.eval_freq <= 0 or self.eval_freq % self.max_episode_steps:
            raise ValueError(
                f"eval_freq ({self.eval_freq}) must be a positive multiple of max_episode_steps "
                f"({self.max_episode_steps}): runs are evaluated and saved between episodes."
            )
        if self.total_steps <= 0 or self.total_steps % self.eval_freq:
            raise ValueError(
                f"total_steps ({self.total_steps}) must be a positive multiple of eval_freq ({self.eval_freq})."
            )
        if not self.tasks or not self.sources or not self.seeds:
            raise ValueError("give at least one task, one reward source and one seed")

    @property
    def source_options(self) -> dict[str, Any]:
        """The scales every reward source of the sweep shares (:func:`~.sources.parse_source`'s options)."""
        names = ("success_bonus", "gt_reward_scale", "learned_reward_mode", "learned_reward_scale")
        return {name: getattr(self, name) for name in names}

    def seeds_of(self, source: str) -> tuple[int, ...]:
        """The agent seeds a source runs with (``gt`` may have its own)."""
        return self.gt_seeds if source == "gt" and self.gt_seeds is not None else self.seeds


RL_PRESETS: dict[str, RLConfig] = {
    "quick": RLConfig(),
    "full": RLConfig(
        tasks=MT10,
        sources=(
            *(f"{row}+sparse" for row in ("zero-shot", "triplet", "triplet-failures", "tcn", "vip", "r3m", "liv")),
            "sparse",
            "gt",
        ),
        seeds=(0, 1, 2, 3, 4),
        total_steps=200_000,
        eval_freq=10_000,
        eval_episodes=10,
        max_episode_steps=500,
        benchmark="runs/full",
    ),
    "tiny": RLConfig(
        tasks=("drawer-close-v3",),
        sources=("sparse", "gt"),
        seeds=(0,),
        total_steps=120,
        eval_freq=60,
        eval_episodes=1,
        max_episode_steps=30,
        learning_starts=30,
        batch_size=16,
        net_arch=(32, 32),
        jobs=1,
    ),
}
"""``vlm-rewards rl --preset NAME``: ``quick`` (the 2 of 7 piloted tasks where SAC learned Meta-World's reward
within 30k steps on one seed, and drawer-close, which random exploration solves, as the control; the bundled reward
with success, sparse and Meta-World's reward; 5 paired seeds), ``full`` (MT10,
every objective of the offline benchmark with success, 5 seeds, 200k steps: for a cluster), ``tiny`` (a smoke test)."""

SWEEP_FILE = "sweep.json"
"""What a sweep's folder records of it: its config and its reward sources' names, in order (for the report)."""
FAILURES_FILE = "failures.json"
"""The runs of the last sweep into a folder that failed: their folders and errors (absent when none failed)."""

RL_PRESETS_HELP = "; ".join(
    [
        "quick: reach, button-press and drawer-close (the control); the bundled reward with success "
        "(bundled+sparse), sparse and gt; 5 seeds, 30k steps",
        "full: all MT10 tasks, every objective with success (ROW+sparse), sparse and gt, 5 seeds, 200k steps",
        "tiny: a smoke test",
    ]
)
