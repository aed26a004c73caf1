"""Reward bookkeeping of the reward wrappers, on fakes: no Meta-World, no rendering, no model.

``RewardTransform`` is checked on small arrays against values computed by hand.
``VectorVLMReward`` (gymnasium, each autoreset mode) and ``VLMRewardVecEnv``
(stable-baselines3) run on :class:`CounterEnv` sub-envs, whose frames encode
their state, scored by :class:`FakeScorer`, whose score of a frame is its first
pixel's red value. So every expected reward below follows from the env's step
count alone:

* frame of sub-env ``i`` after ``t`` steps of its episode: red = ``10 + 10 t + 80 i``,
  green = the episode's number (0 for the first);
* with ``mean = std = 10`` the normalized score is ``phi = t + 8 i``;
* shaped rewards use ``gamma = 0.5``: ``r = 0.5 * phi(o') - phi(o)``.

Unless a test says otherwise, sub-env 0 terminates after 2 steps and reports
``success`` on every step (true on its 2nd), and sub-env 1 is truncated after 3
steps and reports no ``success``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv

import vlm_reward_wrappers.wrappers.sb3 as sb3_module
import vlm_reward_wrappers.wrappers.vector as vector_module
from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.wrappers import FrameSettings, FrameToInfo, RewardSpec, VectorVLMReward, VLMRewardVecEnv
from vlm_reward_wrappers.wrappers.scoring import RewardTransform

SIZE = 64  # FrameToInfo's default frame size without a checkpoint
MEAN, STD = 10.0, 10.0  # the fake checkpoint's reward statistics: phi = t + 8 i
GAMMA = 0.5
BONUS = 100.0

GT_REWARD, VLM_REWARD, VLM_SCORE, IS_SUCCESS = (
    info_keys.GT_REWARD,
    info_keys.VLM_REWARD,
    info_keys.VLM_SCORE,
    info_keys.IS_SUCCESS,
)


def red(index: int, t: int) -> int:
    """The red value (and so the raw score) of sub-env ``index``'s frame after ``t`` steps of an episode."""
    return 10 + 10 * t + 80 * index


class CounterEnv(gym.Env[np.ndarray, int]):
    """An env that counts its steps and draws the count: episodes of ``length`` steps.

    Its frame (``render()``) has red ``10 + 10 t + 80 index`` and green the episode
    number; its reward is ``t + 0.25`` (never 0); ``info["success"]`` is reported
    on every step when ``success_at`` is given (true on those steps), else never.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        index: int,
        length: int,
        *,
        truncate: bool = False,
        success_at: Sequence[int] | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        self.index = index
        self.length = length
        self.truncate = truncate
        self.success_at = None if success_at is None else set(success_at)
        self.render_mode = render_mode
        self.observation_space = gym.spaces.Box(0.0, 1000.0, shape=(1,), dtype=np.float32)
        self.action_space = gym.spaces.Discrete(2)
        self.t = 0
        self.episode = -1

    def _obs(self) -> np.ndarray:
        return np.array([self.t], dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.t = 0
        self.episode += 1
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        assert self.t < self.length, "stepped after the end of an episode without a reset"
        self.t += 1
        info: dict[str, Any] = {}
        if self.success_at is not None:
            info[info_keys.SUCCESS] = self.t in self.success_at
        ended = self.t == self.length
        return self._obs(), self.t + 0.25, ended and not self.truncate, ended and self.truncate, info

    def render(self) -> np.ndarray:
        frame = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
        frame[..., 0] = red(self.index, self.t)
        frame[..., 1] = max(self.episode, 0)  # 0 also before the first reset
        return frame


def default_env_fns(num_envs: int = 2) -> list[Callable[[], gym.Env]]:
    """Sub-env 0: terminates after 2 steps, succeeds on its 2nd; sub-env 1: truncated after 3, no success key."""
    options: list[dict[str, Any]] = [
        dict(length=2, success_at=[2]),
        dict(length=3, truncate=True),
        dict(length=8),
    ]
    return [lambda i=i: FrameToInfo(CounterEnv(i, **options[i])) for i in range(num_envs)]


@dataclass
class FakeScorer:
    """Scores a frame by its first pixel's red value; keeps every batch it was called with."""

    goal: str = "count the steps"
    batches: list[np.ndarray] = field(default_factory=list)

    def __call__(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames)
        assert frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[1:] == (SIZE, SIZE, 3)
        self.batches.append(frames.copy())
        return frames[:, 0, 0, 0].astype(np.float64)

    def take(self) -> list[list[tuple[int, int]]]:
        """The (red, episode) pixels of each batch scored since the last call, and forget them."""
        batches = [[(int(f[0, 0, 0]), int(f[0, 0, 1])) for f in batch] for batch in self.batches]
        self.batches.clear()
        return batches


@dataclass
class FakeReward:
    """What the patched ``make_reward`` was called with and made."""

    specs: list[RewardSpec] = field(default_factory=list)
    settings: list[list[FrameSettings]] = field(default_factory=list)
    scorers: list[FakeScorer] = field(default_factory=list)

    def __call__(self, spec: RewardSpec, settings: Sequence[FrameSettings]) -> tuple[FakeScorer, RewardTransform]:
        self.specs.append(spec)
        self.settings.append(list(settings))
        self.scorers.append(FakeScorer())
        stats = {"mean": MEAN, "std": STD}
        transform = RewardTransform(spec.reward_mode, stats, spec.gamma, spec.success_bonus, len(settings))
        return self.scorers[-1], transform

    @property
    def scorer(self) -> FakeScorer:
        """The scorer of the one wrapper made in the test."""
        assert len(self.scorers) == 1
        return self.scorers[0]


@pytest.fixture
def fake_reward(monkeypatch: pytest.MonkeyPatch) -> FakeReward:
    """``make_reward`` of both vector wrappers replaced by a fake scorer and a real ``RewardTransform``."""
    fake = FakeReward()
    monkeypatch.setattr(vector_module, "make_reward", fake)
    monkeypatch.setattr(sb3_module, "make_reward", fake)
    return fake


def gym_envs(mode: AutoresetMode, reward_mode: str = "raw", success_bonus: float = 0.0) -> VectorVLMReward:
    """The two default sub-envs in a SyncVectorEnv of autoreset ``mode``, wrapped in VectorVLMReward."""
    vec = SyncVectorEnv(default_env_fns(), autoreset_mode=mode)
    return VectorVLMReward(vec, "unused-checkpoint", reward_mode=reward_mode, gamma=GAMMA, success_bonus=success_bonus)


def sb3_envs(reward_mode: str = "raw", success_bonus: float = 0.0, num_envs: int = 2) -> VLMRewardVecEnv:
    """The default sub-envs in a DummyVecEnv, wrapped in VLMRewardVecEnv."""
    venv = DummyVecEnv(default_env_fns(num_envs))
    return VLMRewardVecEnv(venv, "unused-checkpoint", reward_mode=reward_mode, gamma=GAMMA, success_bonus=success_bonus)


def masked(infos: dict[str, Any], key: str, num_envs: int = 2) -> tuple[list[Any], list[bool]]:
    """``infos[key]`` where its ``_key`` mask is set (None elsewhere) and the mask; all None/False if absent."""
    if key not in infos:
        return [None] * num_envs, [False] * num_envs
    mask = [bool(m) for m in infos[f"_{key}"]]
    values = [v.item() if m else None for v, m in zip(infos[key], mask, strict=True)]
    return values, mask


@dataclass(frozen=True, kw_only=True)
class Step:
    """What one gymnasium vector step must return (for two sub-envs)."""

    rewards: tuple[float, float]
    scores: tuple[float | None, float | None]
    """``vlm_score``; None where it must be masked out."""
    scored: tuple[tuple[int, int], ...]
    """(red, episode) of the frames of this step's one scoring call, in order."""
    gt: tuple[float, float]
    """``gt_reward``: the env's own reward (0 on a NEXT_STEP reset step)."""
    success: tuple[bool | None, bool | None] = (None, None)
    """``is_success``; None where it must not be reported."""
    terminated: tuple[bool, bool] = (False, False)
    truncated: tuple[bool, bool] = (False, False)


def check_gym_step(envs: VectorVLMReward, scorer: FakeScorer, expected: Step) -> None:
    """Steps ``envs`` once and checks everything it returns against ``expected``."""
    _, rewards, terminated, truncated, infos = envs.step(np.zeros(2, dtype=np.int64))
    assert rewards.tolist() == list(expected.rewards)
    assert terminated.tolist() == list(expected.terminated)
    assert truncated.tolist() == list(expected.truncated)
    assert masked(infos, VLM_REWARD) == (list(expected.rewards), [True, True])
    assert masked(infos, VLM_SCORE) == (list(expected.scores), [s is not None for s in expected.scores])
    assert masked(infos, IS_SUCCESS) == (list(expected.success), [s is not None for s in expected.success])
    assert masked(infos, GT_REWARD) == (list(expected.gt), [True, True])
    assert scorer.take() == [list(expected.scored)], "one scoring call per step, batched over the sub-envs"


def transformed(reward_mode: str, score: float) -> float:
    """The raw or normalized reward of a score."""
    return score if reward_mode == "raw" else (score - MEAN) / STD


# --- RewardTransform ---------------------------------------------------------------------------------------------


def test_raw_and_normalized_rewards() -> None:
    """raw passes scores through unchanged (as a copy); normalized is (score - mean) / std."""
    scores = np.array([3.0, -1.0, 7.5])
    raw = RewardTransform("raw", {"mean": 1.0, "std": 2.0}, num_envs=3)
    rewards = raw(scores)
    assert rewards.tolist() == [3.0, -1.0, 7.5]
    rewards[0] = 99.0
    assert scores[0] == 3.0, "the rewards must not alias the scores"
    normalized = RewardTransform("normalized", {"mean": 1.0, "std": 2.0}, num_envs=3)
    assert normalized(scores).tolist() == [1.0, -1.0, 3.25]
    assert normalized(scores).tolist() == [1.0, -1.0, 3.25], "normalized rewards keep no state"


def test_zero_std_is_floored_not_divided_by() -> None:
    """A zero std in the reward statistics gives finite normalized rewards (std floored at 1e-8)."""
    transform = RewardTransform("normalized", {"mean": 1.0, "std": 0.0})
    rewards = transform(np.array([1.0, 2.0]))
    assert rewards[0] == 0.0
    assert rewards[1] == pytest.approx(1e8)


def test_shaped_rewards_follow_the_potential_per_sub_env() -> None:
    """shaped: gamma * phi(o') - phi(o), phi the normalized score, each sub-env with its own potential."""
    transform = RewardTransform("shaped", {"mean": 1.0, "std": 2.0}, gamma=0.5, num_envs=2)
    assert transform.needs_first_frames
    transform.start(np.array([3.0, 1.0]))  # phi = [1, 0]
    assert transform(np.array([5.0, 9.0])).tolist() == [0.5 * 2 - 1, 0.5 * 4 - 0]  # phi = [2, 4]
    assert transform(np.array([1.0, 3.0])).tolist() == [0.5 * 0 - 2, 0.5 * 1 - 4]  # phi = [0, 1]
    assert transform(np.array([1.0, 3.0])).tolist() == [0.5 * 0 - 0, 0.5 * 1 - 1]


def test_start_with_a_mask_resets_only_those_potentials() -> None:
    """start(scores, where) sets the potentials of the masked sub-envs from their scores, in order, and no other."""
    transform = RewardTransform("shaped", {"mean": 0.0, "std": 1.0}, gamma=0.5, num_envs=3)
    transform.start(np.array([2.0, 4.0, 6.0]))
    transform(np.array([10.0, 20.0, 30.0]))  # phi = [10, 20, 30]
    transform.start(np.array([8.0, 2.0]), np.array([True, False, True]))  # phi = [8, 20, 2]
    assert transform(np.array([4.0, 4.0, 4.0])).tolist() == [2.0 - 8.0, 2.0 - 20.0, 2.0 - 2.0]
    transform.start(np.array([], dtype=np.float64), np.zeros(3, dtype=bool))  # no episode starts: nothing changes
    assert transform(np.array([4.0, 4.0, 4.0])).tolist() == [2.0 - 4.0] * 3


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_shaped_rewards_telescope_over_an_episode(gamma: float) -> None:
    """Summed discounted shaped rewards are gamma^T phi(o_T) - phi(o_0): shaping does not change the optimum."""
    scores = np.array([0.3, -1.2, 2.5, 0.7, 4.0])
    transform = RewardTransform("shaped", {"mean": 0.5, "std": 1.5}, gamma=gamma)
    transform.start(scores[:1])
    rewards = [transform(scores[t : t + 1])[0] for t in range(1, len(scores))]
    phi = (scores - 0.5) / 1.5
    discounted = sum(gamma**t * r for t, r in enumerate(rewards))
    assert discounted == pytest.approx(gamma ** (len(scores) - 1) * phi[-1] - phi[0])


def test_shaped_progress_pays_the_progress_gained_not_the_progress_held() -> None:
    """shaped-progress: gamma * p(o') - p(o), p the clipped progress; over an episode (gamma 1) the rewards sum to
    the progress gained, and a pose held pays (gamma - 1) * p, never more than nothing."""
    undiscounted = RewardTransform("shaped-progress", {"mean": 5.0, "std": 3.0}, gamma=1.0, progress_range=(1.0, 3.0))
    assert undiscounted.needs_first_frames
    undiscounted.start(np.array([0.0]))  # p = 0 (clipped)
    rewards = [undiscounted(np.array([score]))[0] for score in (2.0, 4.0, 4.0, 1.5)]  # p = 0.5, 1, 1, 0.25
    assert rewards == pytest.approx([0.5, 0.5, 0.0, -0.75])
    assert sum(rewards) == pytest.approx(0.25)
    held = RewardTransform("shaped-progress", {"mean": 0.0, "std": 1.0}, gamma=0.9, progress_range=(0.0, 1.0))
    held.start(np.array([0.8]))
    assert [held(np.array([0.8]))[0] for _ in range(3)] == pytest.approx([0.9 * 0.8 - 0.8] * 3)
    with pytest.raises(ValueError, match=r"reward_mode='shaped-progress' needs progress_range"):
        RewardTransform("shaped-progress", {"mean": 0.0, "std": 1.0})


def test_shaped_step_before_start_raises() -> None:
    """A shaped reward before the first frame of every sub-env is known is an error, not NaN."""
    transform = RewardTransform("shaped", {"mean": 0.0, "std": 1.0}, num_envs=2)
    with pytest.raises(RuntimeError, match=r"reset\(\) before step\(\)"):
        transform(np.array([1.0, 2.0]))
    transform.start(np.array([1.0]), np.array([True, False]))
    with pytest.raises(RuntimeError, match="first frame"):
        transform(np.array([1.0, 2.0]))
    transform.start(np.array([3.0]), np.array([False, True]))
    assert transform(np.array([1.0, 2.0])).tolist() == [0.99 * 1 - 1, 0.99 * 2 - 3]


@pytest.mark.parametrize("mode", ["raw", "normalized"])
def test_start_is_ignored_unless_shaped(mode: str) -> None:
    """raw and normalized need no first frames: start() changes nothing and a step needs no reset."""
    transform = RewardTransform(mode, {"mean": 1.0, "std": 2.0}, num_envs=2)
    assert not transform.needs_first_frames
    expected = transform(np.array([5.0, 7.0])).tolist()
    transform.start(np.array([100.0, -100.0]))
    assert transform(np.array([5.0, 7.0])).tolist() == expected == ([5.0, 7.0] if mode == "raw" else [2.0, 3.0])


@pytest.mark.parametrize(
    "mode, base",
    [("raw", [3.0, 5.0, -1.0, 0.0]), ("normalized", [1.0, 2.0, -1.0, -0.5]), ("shaped", [0.5, 1.0, -1.5, -1.25])],
)
@pytest.mark.parametrize("success", [np.array([True, False, True, False]), np.array([1.0, 0.0, 2.0, -1.0])])
def test_success_bonus_only_where_success(mode: str, base: list[float], success: np.ndarray) -> None:
    """The success bonus is added to exactly the sub-envs whose success flag is true (> 0), in every mode."""
    transform = RewardTransform(mode, {"mean": 1.0, "std": 2.0}, 0.5, 10.0, 4)
    transform.start(np.array([1.0, 1.0, 3.0, 3.0]))  # phi = [0, 0, 1, 1]
    rewards = transform(np.array([3.0, 5.0, -1.0, 0.0]), success=success)
    assert rewards.tolist() == [base[0] + 10.0, base[1], base[2] + 10.0, base[3]]


def test_no_bonus_without_success_flags_or_bonus() -> None:
    """No success flags, or a zero bonus, leave the rewards as they are."""
    with_bonus = RewardTransform("raw", {"mean": 0.0, "std": 1.0}, success_bonus=10.0, num_envs=2)
    assert with_bonus(np.array([1.0, 2.0])).tolist() == [1.0, 2.0]
    no_bonus = RewardTransform("raw", {"mean": 0.0, "std": 1.0}, success_bonus=0.0, num_envs=2)
    assert no_bonus(np.array([1.0, 2.0]), success=np.array([True, True])).tolist() == [1.0, 2.0]


def test_reward_scale_multiplies_the_reward_before_the_bonus() -> None:
    """``reward_scale`` scales every mode's reward, not the success bonus; a non-finite scale is refused."""
    scaled = RewardTransform("normalized", {"mean": 1.0, "std": 2.0}, success_bonus=10.0, num_envs=2, reward_scale=3)
    assert scaled(np.array([5.0, 1.0]), success=np.array([False, True])).tolist() == [6.0, 10.0]
    for scale in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="reward_scale must be a finite number"):
            RewardSpec.of("ckpt", reward_scale=scale)


@pytest.mark.parametrize("gamma", [0.0, -0.5, 1.0001, 2.0])
def test_bad_gamma_is_refused(gamma: float) -> None:
    """gamma must lie in (0, 1]."""
    with pytest.raises(ValueError, match=r"gamma must be in \(0, 1\]"):
        RewardTransform("shaped", {"mean": 0.0, "std": 1.0}, gamma=gamma)


def test_unknown_mode_is_refused() -> None:
    """An unknown reward mode is an error naming the modes."""
    with pytest.raises(ValueError, match="raw, normalized, progress, shaped, shaped-progress"):
        RewardTransform("potential", {"mean": 0.0, "std": 1.0})  # type: ignore[arg-type]


# --- the fakes ----------------------------------------------------------------------------------------------------


def test_frame_to_info_puts_the_fake_env_frames_in_info() -> None:
    """FrameToInfo without a checkpoint: camera corner, 64 px, frames from env.render() after reset and step."""
    env = FrameToInfo(CounterEnv(1, 3))
    assert env.frame_settings == FrameSettings(None, "corner", SIZE)
    _, info = env.reset()
    assert info[info_keys.FRAME][0, 0].tolist() == [red(1, 0), 0, 0]
    _, _, _, _, info = env.step(0)
    assert info[info_keys.FRAME][SIZE - 1, SIZE - 1].tolist() == [red(1, 1), 0, 0]


# --- VectorVLMReward: gymnasium vector envs --------------------------------------------------------------------------


def test_vector_wrapper_gets_the_sub_envs_settings(fake_reward: FakeReward) -> None:
    """make_reward is called once with the wrapper's spec and one FrameSettings per sub-env; goal is the scorer's."""
    envs = gym_envs(AutoresetMode.NEXT_STEP, "shaped", success_bonus=BONUS)
    assert fake_reward.specs == [
        RewardSpec("unused-checkpoint", reward_mode="shaped", gamma=GAMMA, success_bonus=BONUS)
    ]
    assert fake_reward.settings == [[FrameSettings(None, "corner", SIZE)] * 2]
    assert envs.goal == "count the steps"
    assert envs.autoreset_mode == AutoresetMode.NEXT_STEP


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_raw_rewards_before_any_episode_ends(fake_reward: FakeReward, mode: AutoresetMode) -> None:
    """Before any episode ends, every autoreset mode rewards each sub-env with its own frame's score."""
    envs = gym_envs(mode)
    _, infos = envs.reset(seed=0)
    assert fake_reward.scorer.take() == [], "raw rewards score no reset frames"
    assert infos[info_keys.FRAME][:, 0, 0, 0].tolist() == [red(0, 0), red(1, 0)]
    step = Step(
        rewards=(20.0, 100.0), scores=(20.0, 100.0), success=(False, None), scored=((20, 0), (100, 0)), gt=(1.25, 1.25)
    )
    check_gym_step(envs, fake_reward.scorer, step)


def test_next_step_raw_rewards_and_reset_steps(fake_reward: FakeReward) -> None:
    """NEXT_STEP: the step after an episode end only resets that sub-env: reward 0, vlm_score masked out."""
    envs = gym_envs(AutoresetMode.NEXT_STEP, success_bonus=BONUS)
    envs.reset(seed=0)
    steps = [
        Step(
            rewards=(20.0, 100.0),
            scores=(20.0, 100.0),
            success=(False, None),
            scored=((20, 0), (100, 0)),
            gt=(1.25, 1.25),
        ),
        # sub-env 0 terminates with success
        Step(
            rewards=(30.0 + BONUS, 110.0),
            scores=(30.0, 110.0),
            success=(True, None),
            terminated=(True, False),
            scored=((30, 0), (110, 0)),
            gt=(2.25, 2.25),
        ),
        # sub-env 0 resets (its reset frame is scored but masked out); sub-env 1 is truncated
        Step(
            rewards=(0.0, 120.0),
            scores=(None, 120.0),
            truncated=(False, True),
            scored=((10, 1), (120, 0)),
            gt=(0.0, 3.25),
        ),
        # sub-env 1 resets
        Step(
            rewards=(20.0, 0.0), scores=(20.0, None), success=(False, None), scored=((20, 1), (90, 1)), gt=(1.25, 0.0)
        ),
        Step(
            rewards=(30.0 + BONUS, 100.0),
            scores=(30.0, 100.0),
            success=(True, None),
            terminated=(True, False),
            scored=((30, 1), (100, 1)),
            gt=(2.25, 1.25),
        ),
        Step(rewards=(0.0, 110.0), scores=(None, 110.0), scored=((10, 2), (110, 1)), gt=(0.0, 2.25)),
    ]
    for expected in steps:
        check_gym_step(envs, fake_reward.scorer, expected)


def test_next_step_shaped_potential_restarts_from_the_reset_frame(fake_reward: FakeReward) -> None:
    """NEXT_STEP shaped: the reset step's frame (the new episode's first) is phi(o_0) of the next reward."""
    envs = gym_envs(AutoresetMode.NEXT_STEP, "shaped", success_bonus=BONUS)
    envs.reset(seed=0)
    assert fake_reward.scorer.take() == [[(10, 0), (90, 0)]], "one scoring call of the reset frames"
    steps = [  # phi = t + 8 i; r = 0.5 phi' - phi
        Step(
            rewards=(0.5 * 1 - 0, 0.5 * 9 - 8), scores=(20.0, 100.0), success=(False, None),
            scored=((20, 0), (100, 0)), gt=(1.25, 1.25),
        ),
        Step(
            rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 10 - 9), scores=(30.0, 110.0), success=(True, None),
            terminated=(True, False), scored=((30, 0), (110, 0)), gt=(2.25, 2.25),
        ),
        Step(
            rewards=(0.0, 0.5 * 11 - 10), scores=(None, 120.0), truncated=(False, True),
            scored=((10, 1), (120, 0)), gt=(0.0, 3.25),
        ),
        Step(
            rewards=(0.5 * 1 - 0, 0.0), scores=(20.0, None), success=(False, None),
            scored=((20, 1), (90, 1)), gt=(1.25, 0.0),
        ),
        Step(
            rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 9 - 8), scores=(30.0, 100.0), success=(True, None),
            terminated=(True, False), scored=((30, 1), (100, 1)), gt=(2.25, 1.25),
        ),
        Step(rewards=(0.0, 0.5 * 10 - 9), scores=(None, 110.0), scored=((10, 2), (110, 1)), gt=(0.0, 2.25)),
        Step(
            rewards=(0.5 * 1 - 0, 0.5 * 11 - 10), scores=(20.0, 120.0), success=(False, None),
            truncated=(False, True), scored=((20, 2), (120, 1)), gt=(1.25, 3.25),
        ),
    ]  # fmt: skip
    for expected in steps:
        check_gym_step(envs, fake_reward.scorer, expected)


def test_next_step_manual_reset_of_an_ended_sub_env_is_not_a_reset_step(fake_reward: FakeReward) -> None:
    """NEXT_STEP: an ended sub-env reset by hand (reset_mask) steps for real next: its reward is its frame's."""
    envs = gym_envs(AutoresetMode.NEXT_STEP, "shaped")
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    _, _, terminated, _, _ = envs.step(np.zeros(2, dtype=np.int64))
    assert terminated.tolist() == [True, False]
    fake_reward.scorer.take()
    _, infos = envs.reset(options={"reset_mask": np.array([True, False])})
    assert infos[f"_{info_keys.FRAME}"].tolist() == [True, False]
    assert fake_reward.scorer.take() == [[(10, 1)]], "only the reset sub-env's first frame is scored"
    step = Step(
        rewards=(0.5 * 1 - 0, 0.5 * 11 - 10),
        scores=(20.0, 120.0),
        success=(False, None),
        truncated=(False, True),
        scored=((20, 1), (120, 0)),
        gt=(1.25, 3.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)


@pytest.mark.parametrize("reward_mode", ["raw", "normalized"])
def test_same_step_terminal_reward_is_the_terminal_frames(fake_reward: FakeReward, reward_mode: str) -> None:
    """SAME_STEP: the terminal step is scored on its own frame from final_info, not on the reset frame in info."""
    envs = gym_envs(AutoresetMode.SAME_STEP, reward_mode, success_bonus=BONUS)
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    fake_reward.scorer.take()
    _, rewards, terminated, _, infos = envs.step(np.zeros(2, dtype=np.int64))
    assert terminated.tolist() == [True, False]
    assert infos[info_keys.FRAME][0, 0, 0].tolist() == [red(0, 0), 1, 0], "info holds the new episode's frame"
    assert rewards.tolist() == [transformed(reward_mode, 30.0) + BONUS, transformed(reward_mode, 110.0)]
    assert masked(infos, VLM_SCORE) == ([30.0, 110.0], [True, True])
    assert masked(infos, IS_SUCCESS) == ([True, None], [True, False]), "success of the terminal step, in final_info"
    assert fake_reward.scorer.take() == [[(30, 0), (110, 0)]], "non-shaped rewards score no reset frames"
    _, rewards, _, truncated, infos = envs.step(np.zeros(2, dtype=np.int64))
    assert truncated.tolist() == [False, True]
    assert rewards.tolist() == [transformed(reward_mode, 20.0), transformed(reward_mode, 120.0)]
    assert masked(infos, IS_SUCCESS) == ([False, None], [True, False])


def test_same_step_shaped_across_episode_ends(fake_reward: FakeReward) -> None:
    """SAME_STEP shaped: terminal frames from final_info give the reward, reset frames in info the next potential."""
    envs = gym_envs(AutoresetMode.SAME_STEP, "shaped", success_bonus=BONUS)
    envs.reset(seed=0)
    assert fake_reward.scorer.take() == [[(10, 0), (90, 0)]]
    steps = [
        Step(
            rewards=(0.5 * 1 - 0, 0.5 * 9 - 8), scores=(20.0, 100.0), success=(False, None),
            scored=((20, 0), (100, 0)), gt=(1.25, 1.25),
        ),
        # sub-env 0 ends and restarts: its terminal frame, then its new first frame, in the one batch
        Step(
            rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 10 - 9), scores=(30.0, 110.0), success=(True, None),
            terminated=(True, False), scored=((30, 0), (110, 0), (10, 1)), gt=(2.25, 2.25),
        ),
        # sub-env 1 is truncated and restarts
        Step(
            rewards=(0.5 * 1 - 0, 0.5 * 11 - 10), scores=(20.0, 120.0), success=(False, None),
            truncated=(False, True), scored=((20, 1), (120, 0), (90, 1)), gt=(1.25, 3.25),
        ),
        Step(
            rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 9 - 8), scores=(30.0, 100.0), success=(True, None),
            terminated=(True, False), scored=((30, 1), (100, 1), (10, 2)), gt=(2.25, 1.25),
        ),
        Step(
            rewards=(0.5 * 1 - 0, 0.5 * 10 - 9), scores=(20.0, 110.0), success=(False, None),
            scored=((20, 2), (110, 1)), gt=(1.25, 2.25),
        ),
    ]  # fmt: skip
    for expected in steps:
        check_gym_step(envs, fake_reward.scorer, expected)


def test_same_step_two_sub_envs_ending_on_one_step(fake_reward: FakeReward) -> None:
    """SAME_STEP shaped, two sub-envs ending on one step: each gets its own terminal frame and new potential."""
    fns = [lambda: FrameToInfo(CounterEnv(0, 2)), lambda: FrameToInfo(CounterEnv(1, 2, truncate=True))]
    vec = SyncVectorEnv(fns, autoreset_mode=AutoresetMode.SAME_STEP)
    envs = VectorVLMReward(vec, "unused-checkpoint", reward_mode="shaped", gamma=GAMMA)
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    fake_reward.scorer.take()
    step = Step(
        rewards=(0.5 * 2 - 1, 0.5 * 10 - 9),
        scores=(30.0, 110.0),
        terminated=(True, False),
        truncated=(False, True),
        scored=((30, 0), (110, 0), (10, 1), (90, 1)),
        gt=(2.25, 2.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)
    step = Step(rewards=(0.5 * 1 - 0, 0.5 * 9 - 8), scores=(20.0, 100.0), scored=((20, 1), (100, 1)), gt=(1.25, 1.25))
    check_gym_step(envs, fake_reward.scorer, step)


def test_disabled_autoreset_reset_mask_restarts_the_potentials(fake_reward: FakeReward) -> None:
    """DISABLED shaped: sub-envs reset with options={"reset_mask": ...} restart their potentials, and only they."""
    envs = gym_envs(AutoresetMode.DISABLED, "shaped", success_bonus=BONUS)
    envs.reset(seed=0)
    assert fake_reward.scorer.take() == [[(10, 0), (90, 0)]]
    step = Step(
        rewards=(0.5 * 1 - 0, 0.5 * 9 - 8),
        scores=(20.0, 100.0),
        success=(False, None),
        scored=((20, 0), (100, 0)),
        gt=(1.25, 1.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)
    step = Step(
        rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 10 - 9),
        scores=(30.0, 110.0),
        success=(True, None),
        terminated=(True, False),
        scored=((30, 0), (110, 0)),
        gt=(2.25, 2.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)

    _, infos = envs.reset(options={"reset_mask": np.array([True, False])})
    assert infos[f"_{info_keys.FRAME}"].tolist() == [True, False]
    assert fake_reward.scorer.take() == [[(10, 1)]], "only the reset sub-env's first frame is scored"
    step = Step(
        rewards=(0.5 * 1 - 0, 0.5 * 11 - 10),
        scores=(20.0, 120.0),
        success=(False, None),
        truncated=(False, True),
        scored=((20, 1), (120, 0)),
        gt=(1.25, 3.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)

    envs.reset(options={"reset_mask": np.array([False, True])})
    assert fake_reward.scorer.take() == [[(90, 1)]]
    step = Step(
        rewards=(0.5 * 2 - 1 + BONUS, 0.5 * 9 - 8),
        scores=(30.0, 100.0),
        success=(True, None),
        terminated=(True, False),
        scored=((30, 1), (100, 1)),
        gt=(2.25, 1.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)


@pytest.mark.parametrize("reward_mode", ["raw", "normalized"])
def test_disabled_autoreset_terminal_step_is_scored(fake_reward: FakeReward, reward_mode: str) -> None:
    """DISABLED: the terminal step's reward is its own frame's score, with the bonus; nothing is masked."""
    envs = gym_envs(AutoresetMode.DISABLED, reward_mode, success_bonus=BONUS)
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    fake_reward.scorer.take()
    step = Step(
        rewards=(transformed(reward_mode, 30.0) + BONUS, transformed(reward_mode, 110.0)),
        scores=(30.0, 110.0),
        success=(True, None),
        terminated=(True, False),
        scored=((30, 0), (110, 0)),
        gt=(2.25, 2.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_shaped_step_before_reset_raises(fake_reward: FakeReward, mode: AutoresetMode) -> None:
    """A shaped vector env stepped before the wrapper's first reset raises instead of returning NaN rewards."""
    envs = gym_envs(mode, "shaped")
    envs.env.reset(seed=0)  # the sub-envs can step, but the wrapper never saw their first frames
    with pytest.raises(RuntimeError, match="first frame"):
        envs.step(np.zeros(2, dtype=np.int64))


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_full_reset_after_an_episode_end(fake_reward: FakeReward, mode: AutoresetMode) -> None:
    """A full reset right after an episode end restarts every potential; the next step is a real step everywhere."""
    envs = gym_envs(mode, "shaped")
    envs.reset(seed=0)
    envs.step(np.zeros(2, dtype=np.int64))
    envs.step(np.zeros(2, dtype=np.int64))  # sub-env 0 terminates (SAME_STEP: and starts episode 1 already)
    fake_reward.scorer.take()
    envs.reset(seed=1)
    episode = 2 if mode == AutoresetMode.SAME_STEP else 1
    assert fake_reward.scorer.take() == [[(10, episode), (90, 1)]]
    step = Step(
        rewards=(0.5 * 1 - 0, 0.5 * 9 - 8),
        scores=(20.0, 100.0),
        success=(False, None),
        scored=((20, episode), (100, 1)),
        gt=(1.25, 1.25),
    )
    check_gym_step(envs, fake_reward.scorer, step)


# --- VLMRewardVecEnv: stable-baselines3 ----------------------------------------------------------------------------


def sb3_step(venv: VLMRewardVecEnv) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """One step of every sub-env: rewards (float32, as SB3 wants), dones and infos."""
    _, rewards, dones, infos = venv.step(np.zeros(venv.num_envs, dtype=np.int64))
    assert rewards.dtype == np.float32
    return rewards, dones, infos


def sb3_values(infos: list[dict[str, Any]], key: str) -> list[Any]:
    """``info[key]`` of every sub-env, None where absent."""
    return [info.get(key) for info in infos]


def test_sb3_wrapper_gets_the_sub_envs_settings(fake_reward: FakeReward) -> None:
    """make_reward is called once with the wrapper's spec and one FrameSettings per sub-env."""
    venv = sb3_envs("normalized", success_bonus=BONUS, num_envs=3)
    assert fake_reward.specs == [
        RewardSpec("unused-checkpoint", reward_mode="normalized", gamma=GAMMA, success_bonus=BONUS)
    ]
    assert fake_reward.settings == [[FrameSettings(None, "corner", SIZE)] * 3]
    assert venv.goal == "count the steps"


@pytest.mark.parametrize("reward_mode", ["raw", "normalized"])
def test_sb3_terminal_step_is_scored_on_its_own_frame(fake_reward: FakeReward, reward_mode: str) -> None:
    """SB3: a done step's reward is the score of its frame from that step's info, not of the reset frame."""
    venv = sb3_envs(reward_mode, success_bonus=BONUS)
    venv.reset()
    assert fake_reward.scorer.take() == [], "non-shaped rewards score no reset frames"
    steps = [  # vlm_score, dones, is_success, scored frames
        ([20.0, 100.0], [False, False], [False, None], [(20, 0), (100, 0)]),
        ([30.0, 110.0], [True, False], [True, None], [(30, 0), (110, 0)]),
        ([20.0, 120.0], [False, True], [False, None], [(20, 1), (120, 0)]),
        ([30.0, 100.0], [True, False], [True, None], [(30, 1), (100, 1)]),
    ]
    for scores, dones, success, scored in steps:
        rewards, step_dones, infos = sb3_step(venv)
        bonus = [BONUS if s else 0.0 for s in success]
        assert rewards.tolist() == [transformed(reward_mode, v) + b for v, b in zip(scores, bonus, strict=True)]
        assert step_dones.tolist() == dones
        assert sb3_values(infos, VLM_SCORE) == scores
        assert sb3_values(infos, VLM_REWARD) == rewards.tolist()
        assert sb3_values(infos, IS_SUCCESS) == success
        assert fake_reward.scorer.take() == [scored]


def test_sb3_shaped_potential_restarts_from_the_reset_info_frame(fake_reward: FakeReward) -> None:
    """SB3 shaped: done steps use the terminal frame, and venv.reset_infos' frame sets the next episode's phi."""
    venv = sb3_envs("shaped", success_bonus=BONUS)
    venv.reset()
    assert fake_reward.scorer.take() == [[(10, 0), (90, 0)]]
    steps = [  # rewards, dones, vlm_score, is_success, gt_reward, scored frames
        ([0.5 * 1 - 0, 0.5 * 9 - 8], [False, False], [20.0, 100.0], [False, None], [1.25, 1.25],
         [(20, 0), (100, 0)]),
        ([0.5 * 2 - 1 + BONUS, 0.5 * 10 - 9], [True, False], [30.0, 110.0], [True, None], [2.25, 2.25],
         [(30, 0), (110, 0), (10, 1)]),
        ([0.5 * 1 - 0, 0.5 * 11 - 10], [False, True], [20.0, 120.0], [False, None], [1.25, 3.25],
         [(20, 1), (120, 0), (90, 1)]),
        ([0.5 * 2 - 1 + BONUS, 0.5 * 9 - 8], [True, False], [30.0, 100.0], [True, None], [2.25, 1.25],
         [(30, 1), (100, 1), (10, 2)]),
        ([0.5 * 1 - 0, 0.5 * 10 - 9], [False, False], [20.0, 110.0], [False, None], [1.25, 2.25],
         [(20, 2), (110, 1)]),
    ]  # fmt: skip
    for rewards, dones, scores, success, gt, scored in steps:
        step_rewards, step_dones, infos = sb3_step(venv)
        assert step_rewards.tolist() == rewards
        assert step_dones.tolist() == dones
        assert sb3_values(infos, VLM_SCORE) == scores
        assert sb3_values(infos, VLM_REWARD) == rewards
        assert sb3_values(infos, IS_SUCCESS) == success
        assert sb3_values(infos, GT_REWARD) == gt
        assert fake_reward.scorer.take() == [scored]
        assert ["terminal_observation" in info for info in infos] == dones


def test_sb3_shaped_step_before_reset_raises(fake_reward: FakeReward) -> None:
    """SB3 shaped stepped without a reset raises instead of returning NaN rewards."""
    venv = sb3_envs("shaped")
    with pytest.raises(RuntimeError, match="first frame"):
        venv.step(np.zeros(2, dtype=np.int64))
