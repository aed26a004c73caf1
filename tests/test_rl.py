"""The RL subpackage (``vlm_reward_wrappers.rl``) on real parts: Meta-World envs, SB3 SAC, tiny real checkpoints.

Reward sources are checked against Meta-World's own reward and success flag;
the pipelined reward worker against the in-process ``VLMRewardWrapper``; runs
are killed (SIGKILL), stopped and resumed, and their curves, files and agents
compared with uninterrupted runs; the report is checked on run folders written
by hand with values computed by hand.

Every run here is tiny (``RL_PRESETS["tiny"]`` shrunk further) and the torch in
this process uses one thread, as the sweep's workers do: on a busy 2-core
machine more threads make each reward-model call many times slower.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import multiprocessing
import os
import pickle
import re
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.cli import main as cli_main
from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.scoring import score_dataset
from vlm_reward_wrappers.extras import MissingExtraError
from vlm_reward_wrappers.io_utils import CorruptFileError
from vlm_reward_wrappers.metrics.off_expert import gate, probe_task
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, RewardModel, is_checkpoint
from vlm_reward_wrappers.rl import RL_PRESETS, RLConfig, RunSpec, parse_source, read_curve, run_one, write_rl_report
from vlm_reward_wrappers.rl.pipelined import DeferredRewardBuffer, PipelinedRewardVecEnv
from vlm_reward_wrappers.rl.report import markdown_table, offline_online, read_results, summary_rows
from vlm_reward_wrappers.rl.run import (
    CURVE_FIELDS,
    _worker_env,
    differs_from,
    evaluate_agent,
    make_run_env,
    make_train_venv,
    read_run,
    run_record,
    uses_reward_worker,
)
from vlm_reward_wrappers.rl.sources import GroundTruthReward, RewardSource, SparseSuccessReward, with_reward
from vlm_reward_wrappers.rl.state import Progress, save_state
from vlm_reward_wrappers.rl.sweep import (
    benchmark_rows,
    check_runs,
    planned_runs,
    resolve_source,
    run_folder,
    run_sweep,
)
from vlm_reward_wrappers.training.trainer import RunMismatchError
from vlm_reward_wrappers.wrappers import RewardSpec

TASK = "reach-v3"
BONUS = 2.5

# A run of four evaluations, 30 steps apart, one 30-step episode each: the agent trains from step 30 on.
TINY = dataclasses.replace(
    RL_PRESETS["tiny"],
    tasks=(TASK,),
    total_steps=120,
    eval_freq=30,
    eval_episodes=1,
    max_episode_steps=30,
    learning_starts=30,
    batch_size=16,
    net_arch=(32, 32),
    reward_worker="off",
)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def curve_steps(curve: list[dict[str, float]]) -> list[int]:
    return [int(row["step"]) for row in curve]


def without_wall_time(curve: list[dict[str, float]]) -> list[dict[str, float]]:
    return [{key: value for key, value in row.items() if key != "wall_s"} for row in curve]


def assert_finished(folder: Path, config: RLConfig) -> list[dict[str, float]]:
    """A complete run folder: a continuous curve, ``done.json``, the final agent, no state left; the curve."""
    curve = read_curve(folder)
    assert curve_steps(curve) == list(range(config.eval_freq, config.total_steps + 1, config.eval_freq))
    assert set(curve[0]) == set(CURVE_FIELDS)
    assert (folder / "done.json").is_file() and (folder / "agent.zip").is_file()
    assert not any((folder / name).exists() for name in ("state", "state.new", "state.old"))
    assert json.loads((folder / "done.json").read_text())["steps"] == config.total_steps
    assert_tensorboard_logs(folder, curve)
    return curve


def assert_tensorboard_logs(folder: Path, curve: list[dict[str, float]]) -> None:
    """The run's TensorBoard events hold its evaluations: the values of the curve at their steps, the last one
    included (a kill between a save and its log may leave out one earlier step, never add one)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    logged = {event.step: event.value for event in events.Scalars("eval/success_rate")}
    by_step = {int(row["step"]): row["success_rate"] for row in curve}
    assert logged and set(logged) <= set(by_step) and max(logged) == max(by_step)
    assert all(value == pytest.approx(by_step[step]) for step, value in logged.items())
    assert "eval/gt_return" in events.Tags()["scalars"] and "eval/reward_return" in events.Tags()["scalars"]


def assert_skipped_when_done(spec: RunSpec, config: RLConfig, folder: Path, curve: list[dict[str, float]]) -> None:
    """A finished run is not trained again: the same curve comes back at once, nothing logged."""
    lines: list[str] = []
    again = run_one(spec, config, folder, log=lines.append)
    assert again == curve and lines == []  # a run that trained would log its evaluations


def policy_parameters(path: Path) -> dict[str, torch.Tensor]:
    return SAC.load(path, device="cpu").policy.state_dict()


def assert_same_parameters(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


# ------------------------------------------------------------ reward sources


def test_parse_source_names_each_kind_of_source() -> None:
    """``gt``, ``sparse``, ``PATH`` and ``PATH+sparse`` parse to the right reward on Meta-World's scale: ``gt``
    itself, the learned reward as shaped progress times 5 (``+sparse``: 10 * success + 5 * shaped progress);
    ``+sparse`` alone is refused."""
    assert parse_source("gt") == RewardSource("gt", "gt")
    assert parse_source("gt", gt_reward_scale=0.1) == RewardSource("gt", "gt", reward_scale=0.1)
    assert parse_source("sparse") == RewardSource("sparse", "none", success_bonus=10.0)
    assert parse_source("sparse", success_bonus=BONUS) == RewardSource("sparse", "none", success_bonus=BONUS)
    learned = parse_source("runs/quick/checkpoints/triplet-seed0", name="triplet")
    assert learned == RewardSource(
        "triplet", "learned", "runs/quick/checkpoints/triplet-seed0", 0.0, 5.0, "shaped-progress"
    )
    assert learned.learned and not parse_source("gt").learned and not parse_source("sparse").learned
    plus = parse_source("ckpt/triplet+sparse", success_bonus=BONUS)
    assert plus == RewardSource("ckpt/triplet+sparse", "learned", "ckpt/triplet", BONUS, 5.0, "shaped-progress")
    earlier = parse_source("ckpt/triplet", learned_reward_mode="normalized", learned_reward_scale=1.0)
    assert (earlier.reward_mode, earlier.reward_scale) == ("normalized", 1.0)
    with pytest.raises(ValueError, match=r"'\+sparse'.*gt, sparse, a checkpoint folder, or CHECKPOINT\+sparse"):
        parse_source("+sparse")


def test_sparse_and_ground_truth_rewards_follow_metaworld() -> None:
    """``sparse`` pays exactly the bonus on Meta-World's success steps and 0 elsewhere; ``gt`` is Meta-World's
    reward times its scale (here 0.1); both report Meta-World's reward as ``gt_reward`` beside ``is_success``.
    Three envs with one seed and one action sequence (random steps, then Meta-World's scripted expert until past
    its first success) are compared step by step."""
    from metaworld.policies import ENV_POLICY_MAP

    plain = make_metaworld_env(TASK, image_size=32)
    ground_truth = with_reward(make_metaworld_env(TASK, image_size=32), parse_source("gt", gt_reward_scale=0.1))
    sparse = with_reward(make_metaworld_env(TASK, image_size=32), parse_source("sparse", success_bonus=BONUS))
    assert isinstance(ground_truth, GroundTruthReward) and isinstance(sparse, SparseSuccessReward)
    assert sparse.bonus == BONUS

    expert = ENV_POLICY_MAP[TASK]()
    rng = np.random.default_rng(0)
    obs = [env.reset(seed=7)[0] for env in (plain, ground_truth, sparse)]
    successes, first_success = [], None
    for step in range(200):
        action = rng.uniform(-1, 1, size=4) if step < 5 else np.clip(expert.get_action(obs[0]), -1, 1)
        action = action.astype(np.float32)
        results = [env.step(action) for env in (plain, ground_truth, sparse)]
        (obs_p, reward_p, *_, info_p), (obs_g, reward_g, *_, info_g), (obs_s, reward_s, *_, info_s) = results
        obs = [obs_p, obs_g, obs_s]
        np.testing.assert_array_equal(obs_p, obs_g)
        np.testing.assert_array_equal(obs_p, obs_s)
        success = bool(info_p["success"])
        assert reward_g == 0.1 * float(reward_p) and 0.0 <= reward_g <= 1.0
        assert info_g["gt_reward"] == info_s["gt_reward"] == float(reward_p)
        assert info_g["is_success"] is success and info_s["is_success"] is success
        assert reward_s == (BONUS if success else 0.0)
        successes.append(success)
        if success and first_success is None:
            first_success = step
        if first_success is not None and step >= first_success + 3:
            break
    # so both kinds of step were seen: no success (reward 0) first, then success (reward BONUS)
    assert first_success is not None and first_success > 5, "the expert should reach success after a few steps"
    for env in (plain, ground_truth, sparse):
        env.close()


PAID: dict[str, Any] = {"learned_reward_mode": "progress"}
"""A learned source that pays progress itself rather than the default's shaping of it."""


def test_learned_source_is_success_plus_scaled_progress(tiny_checkpoint: Path) -> None:
    """``CKPT+sparse`` rewards ``10 * success + 5 * progress`` step by step, with progress the checkpoint's calibrated
    per-task reward in [0, 1] (what ``VLMRewardWrapper(reward_mode="progress")`` gives for the same steps); without
    ``+sparse`` the success term is absent. Replayed on one seed with Meta-World's expert, past its first success."""
    from metaworld.policies import ENV_POLICY_MAP

    envs = [
        VLMRewardWrapper(make_metaworld_env(TASK, image_size=64), tiny_checkpoint, reward_mode="progress"),
        with_reward(make_metaworld_env(TASK, image_size=64), parse_source(f"{tiny_checkpoint}+sparse", **PAID)),
        with_reward(make_metaworld_env(TASK, image_size=64), parse_source(str(tiny_checkpoint), **PAID)),
    ]
    expert = ENV_POLICY_MAP[TASK]()
    obs = [env.reset(seed=3)[0] for env in envs]
    seen_success, seen_progress = False, []
    for _ in range(60):
        action = np.clip(expert.get_action(obs[0]), -1, 1).astype(np.float32)
        results = [env.step(action) for env in envs]
        obs = [result[0] for result in results]
        (progress, plus, alone) = (float(result[1]) for result in results)
        success = bool(results[0][4]["success"])
        assert 0.0 <= progress <= 1.0
        assert plus == pytest.approx(10.0 * success + 5.0 * progress, abs=1e-5)
        assert alone == pytest.approx(5.0 * progress, abs=1e-5)
        seen_success |= success
        seen_progress.append(progress)
    assert seen_success and np.ptp(seen_progress) > 0  # both terms were exercised
    for env in envs:
        env.close()


class ScriptedExpert:
    """Meta-World's scripted expert behind SB3's ``predict``: an agent that succeeds."""

    def __init__(self, task: str) -> None:
        from metaworld.policies import ENV_POLICY_MAP

        self.policy = ENV_POLICY_MAP[task]()

    def predict(self, obs: np.ndarray, deterministic: bool = False) -> tuple[np.ndarray, None]:
        return np.clip(self.policy.get_action(obs), -1, 1).astype(np.float32), None


def test_evaluation_scores_episodes_with_seeds_from_zero() -> None:
    """``evaluate_agent`` runs episodes with seeds 0, 1, ... and reports the success rate, Meta-World's mean return
    and the mean return of the run's own reward (here ``sparse``), as a replay of the same episodes by hand gives."""
    config = dataclasses.replace(TINY, max_episode_steps=60, eval_freq=60, success_bonus=BONUS)
    env = make_run_env(RunSpec(TASK, parse_source("sparse", success_bonus=BONUS), 0), config)
    agent = ScriptedExpert(TASK)
    result = evaluate_agent(agent, env, episodes=2)  # type: ignore[arg-type]
    env.close()

    plain = make_metaworld_env(TASK, max_episode_steps=60, image_size=32)
    gt_returns, success_steps = [], []
    for seed in (0, 1):
        obs, _ = plain.reset(seed=seed)
        gt_return, successes, done = 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = plain.step(agent.predict(obs)[0])
            gt_return, successes, done = (
                gt_return + float(reward),
                successes + bool(info["success"]),
                terminated or truncated,
            )
        gt_returns.append(gt_return)
        success_steps.append(successes)
    plain.close()
    assert min(success_steps) > 0  # the expert succeeds in both episodes
    assert result["success_rate"] == 1.0
    assert result["gt_return"] == pytest.approx(np.mean(gt_returns))
    assert result["reward_return"] == pytest.approx(BONUS * np.mean(success_steps))


def test_reward_worker_is_for_learned_sources_only() -> None:
    """Only a learned source renders in a worker: ``on`` and ``auto`` (with two cores or more) give it one, ``off``
    never; ``gt`` and ``sparse`` have no frames to render."""
    learned = RunSpec(TASK, parse_source("runs/quick/checkpoints/triplet-seed0"), 0)
    for source in ("gt", "sparse"):
        assert not uses_reward_worker(
            RunSpec(TASK, parse_source(source), 0), dataclasses.replace(TINY, reward_worker="on")
        )
    assert uses_reward_worker(learned, dataclasses.replace(TINY, reward_worker="on"))
    assert not uses_reward_worker(learned, dataclasses.replace(TINY, reward_worker="off"))
    auto = uses_reward_worker(learned, dataclasses.replace(TINY, reward_worker="auto"))
    assert auto == ((os.cpu_count() or 1) >= 2)


# ------------------------------------------------------------ DeferredRewardBuffer

OBS_SPACE = spaces.Box(-1e6, 1e6, shape=(3,), dtype=np.float32)
ACTION_SPACE = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
PENDING = -999.0  # the reward SB3 stores for a transition whose reward is still pending (here: a sentinel)


def deferred_buffer(size: int = 8) -> DeferredRewardBuffer:
    return DeferredRewardBuffer(size, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=1)


def add_transition(buffer: ReplayBuffer, number: int, reward: float) -> None:
    """Transition ``number``: its observation and action hold the number, so samples can be traced back."""
    obs = np.full((1, 3), number, dtype=np.float32)
    buffer.add(obs, obs + 1, np.full((1, 2), 0.5, dtype=np.float32), np.array([reward]), np.array([False]), [{}])


@pytest.mark.parametrize(
    "added, pending",
    [(5, 1), (5, 3), (8, 1), (9, 2), (11, 2), (11, 4)],
    ids=["partial", "partial-3-pending", "just-full", "pending-across-the-wrap", "wrapped", "wrapped-4-pending"],
)
def test_deferred_buffer_never_samples_a_pending_transition(added: int, pending: int) -> None:
    """``sample`` draws from every transition that has its reward and never from a pending one, whether the buffer
    is partly filled, just full, or has wrapped around (pending slots on either side of the end included)."""
    buffer = deferred_buffer(8)
    for number in range(added):
        add_transition(buffer, number, PENDING)
        if number < added - pending:
            buffer.fill_oldest(float(number))  # the reward of a transition is its number
    assert len(buffer.pending) == pending
    live = set(range(max(0, added - 8), added - pending))  # in the buffer (not overwritten) and rewarded
    seen: set[float] = set()
    np.random.seed(0)
    for _ in range(300):
        samples = buffer.sample(16)
        rewards = samples.rewards.numpy()[:, 0]
        assert PENDING not in rewards
        np.testing.assert_array_equal(samples.observations.numpy()[:, 0], rewards)  # rewards stay with their obs
        seen.update(rewards.tolist())
    assert seen == live


def test_deferred_buffer_fills_rewards_in_order_and_refuses_what_it_cannot_do() -> None:
    """``fill_oldest`` writes the oldest pending reward first; sampling with no reward yet, filling with nothing
    pending, several envs and ``optimize_memory_usage`` are refused with errors that say why."""
    buffer = deferred_buffer(8)
    for number in range(3):
        add_transition(buffer, number, PENDING)
    with pytest.raises(RuntimeError, match="no transition has its reward yet"):
        buffer.sample(4)
    buffer.fill_oldest(10.0)
    buffer.fill_oldest(11.0)
    assert list(buffer.pending) == [2]
    np.testing.assert_array_equal(buffer.rewards[:3, 0], [10.0, 11.0, PENDING])
    buffer.fill_oldest(12.0)
    with pytest.raises(RuntimeError, match="no transition is waiting"):
        buffer.fill_oldest(13.0)
    np.testing.assert_array_equal(buffer.rewards[:4, 0], [10.0, 11.0, 12.0, 0.0])

    two_envs = DeferredRewardBuffer(8, OBS_SPACE, ACTION_SPACE, device="cpu", n_envs=2)
    with pytest.raises(ValueError, match="one env"):
        two_envs.add(np.zeros((2, 3)), np.zeros((2, 3)), np.zeros((2, 2)), np.zeros(2), np.zeros(2), [{}, {}])
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        DeferredRewardBuffer(8, OBS_SPACE, ACTION_SPACE, device="cpu", optimize_memory_usage=True)


def test_a_state_with_pending_rewards_is_not_saved(tmp_path: Path) -> None:
    """A deferred buffer whose newest rewards are still on their way is never saved (the state would keep
    placeholder rewards); once they are filled it is."""
    agent = SAC("MlpPolicy", DummyVecEnv([lambda: gym.make("Pendulum-v1")]), buffer_size=8, device="cpu")
    agent.replay_buffer = deferred_buffer(8)
    for number in range(4):
        add_transition(agent.replay_buffer, number, PENDING)
    with pytest.raises(RuntimeError, match="flush"):
        save_state(tmp_path / "pending", agent, Progress())
    for reward in (1.0, 2.0, 3.0, 4.0):
        agent.replay_buffer.fill_oldest(reward)
    save_state(tmp_path / "filled", agent, Progress(steps=4))
    with np.load(tmp_path / "filled" / "replay_buffer.npz", allow_pickle=False) as stored:
        np.testing.assert_array_equal(stored["rewards"][:4, 0], [1.0, 2.0, 3.0, 4.0])
        assert int(stored["pos"]) == 4


# ------------------------------------------------------------ PipelinedRewardVecEnv


@pytest.mark.parametrize("reward_mode", ["normalized", "shaped-progress"])
def test_pipelined_rewards_equal_the_in_process_wrappers(tiny_checkpoint: Path, reward_mode: str) -> None:
    """The rewards the reward worker's env writes into the replay buffer (one step late) equal, step by step, those
    of ``VLMRewardWrapper`` in the same mode for the same episode seeds and actions, across episode ends (for
    ``shaped-progress`` each episode's potential starts from its first frame); observations, ``gt_reward``,
    ``is_success`` and terminal observations match too, and closing ends the worker."""
    max_steps, seed_base, count = 15, 1000, 40
    actions = np.random.default_rng(3).uniform(-1, 1, size=(count, 4)).astype(np.float32)

    reference = VLMRewardWrapper(
        make_metaworld_env(TASK, image_size=64, max_episode_steps=max_steps), tiny_checkpoint, reward_mode=reward_mode
    )
    episode = 0
    obs, _ = reference.reset(seed=seed_base)
    expected: list[tuple[Any, ...]] = []  # (obs, reward, next obs, done, gt_reward, is_success)
    for action in actions:
        next_obs, reward, terminated, truncated, info = reference.step(action)
        expected.append((obs, reward, next_obs, terminated or truncated, info["gt_reward"], info["is_success"]))
        obs = next_obs
        if terminated or truncated:
            episode += 1
            obs, _ = reference.reset(seed=seed_base + episode)
    reference.close()
    assert episode == 2  # two episode ends crossed

    children = set(multiprocessing.active_children())
    env_fn = functools.partial(_worker_env, TASK, max_steps, seed_base, 0)
    venv = PipelinedRewardVecEnv(env_fn, RewardSpec.of(tiny_checkpoint, reward_mode=reward_mode), TASK)
    buffer = DeferredRewardBuffer(64, venv.observation_space, venv.action_space, device="cpu")
    venv.attach(buffer)
    obs = venv.reset()
    for step, action in enumerate(actions):  # what SB3's off-policy loop does with a VecEnv
        venv.step_async(action[None])
        next_obs, placeholder, dones, infos = venv.step_wait()
        assert placeholder.tolist() == [0.0]
        stored_next = infos[0]["terminal_observation"][None] if dones[0] else next_obs
        buffer.add(obs, stored_next, action[None], placeholder, dones, infos)
        assert len(buffer.pending) == 1  # the newest reward comes with the next step
        want_obs, _, want_next, want_done, want_gt, want_success = expected[step]
        np.testing.assert_allclose(obs[0], want_obs, atol=1e-6)
        np.testing.assert_allclose(stored_next[0], want_next, atol=1e-6)
        assert bool(dones[0]) == want_done and ("terminal_observation" in infos[0]) == want_done
        assert infos[0]["gt_reward"] == pytest.approx(want_gt) and infos[0]["is_success"] is want_success
        if want_done:
            assert infos[0]["TimeLimit.truncated"] is True
        obs = next_obs
    venv.flush()
    assert len(buffer.pending) == 0
    np.testing.assert_allclose(buffer.rewards[:count, 0], [row[1] for row in expected], atol=1e-5)
    assert np.ptp(buffer.rewards[:count, 0]) > 0  # real scores, not a constant
    assert len(set(multiprocessing.active_children()) - children) == 1  # the worker
    venv.close()
    venv.close()  # closing twice is fine
    assert set(multiprocessing.active_children()) <= children


# ------------------------------------------------------------ runs: kill, stop, resume

KILLED = dataclasses.replace(TINY, total_steps=90)  # three evaluations
KILLED_RUN = """
import pickle, sys
import torch
torch.set_num_threads(1)
from vlm_reward_wrappers.rl import run_one
spec, config, folder = pickle.loads(bytes.fromhex(sys.argv[1]))
run_one(spec, config, folder)
"""


def test_learned_run_killed_and_resumed_is_continuous(
    tiny_checkpoint: Path, tmp_path: Path, sigkill_when_written: Callable[..., None]
) -> None:
    """A learned-reward run SIGKILLed in another process after its first evaluation resumes from its last save:
    one evaluation per ``eval_freq`` steps, no gap, no duplicate; ``done.json`` and ``agent.zip`` (the agent after
    ``total_steps`` steps) are written and the state is gone; a second call returns the curve without training."""
    spec, folder = RunSpec(TASK, parse_source(str(tiny_checkpoint)), 0), tmp_path / "run"
    payload = pickle.dumps((spec, KILLED, str(folder))).hex()
    command = [sys.executable, "-c", KILLED_RUN, payload]
    sigkill_when_written(command, folder / "curve.csv", tmp_path / "killed.log", timeout=240)
    assert not (folder / "done.json").exists(), "the run finished before it was killed: make it longer"
    before = read_curve(folder)
    evaluated = curve_steps(before)
    assert evaluated and evaluated[-1] < KILLED.total_steps

    lines: list[str] = []
    curve = run_one(spec, KILLED, folder, log=lines.append)
    resumed_at = [int(line.split()[-1]) for line in lines if "resuming at step" in line]
    assert len(resumed_at) == 1 and resumed_at[0] >= evaluated[-1] >= KILLED.eval_freq
    assert curve == assert_finished(folder, KILLED)
    assert curve[: len(before)] == before  # the evaluations before the kill are kept, not redone
    assert json.loads((folder / "run.json").read_text())["reward_worker"] is False
    assert SAC.load(folder / "agent.zip", device="cpu").num_timesteps == KILLED.total_steps
    assert_skipped_when_done(spec, KILLED, folder, curve)


PIPELINED = dataclasses.replace(TINY, total_steps=60, reward_worker="on")


@pytest.fixture(scope="module")
def stopped_pipelined_run(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A learned-reward run with a reward worker, stopped after its first evaluation (of two)."""
    folder = tmp_path_factory.mktemp("pipelined") / "run"
    spec = RunSpec(TASK, parse_source(str(tiny_checkpoint)), 0)
    curve = run_one(spec, PIPELINED, folder, log=lambda line: None, stop_after=1)
    assert curve_steps(curve) == [30] and (folder / "state").is_dir() and not (folder / "done.json").exists()
    assert json.loads((folder / "run.json").read_text())["reward_worker"] is True
    return folder


def test_pipelined_run_stopped_and_resumed_is_continuous(
    stopped_pipelined_run: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A run with a reward worker stopped after one evaluation resumes where it stopped and finishes: a continuous
    curve, ``done.json``, ``agent.zip``, no state left; the finished run is skipped."""
    folder = Path(shutil.copytree(stopped_pipelined_run, tmp_path / "run"))
    spec = RunSpec(TASK, parse_source(str(tiny_checkpoint)), 0)
    children = set(multiprocessing.active_children())
    lines: list[str] = []
    curve = run_one(spec, PIPELINED, folder, log=lines.append)
    assert any(line.endswith("resuming at step 30") for line in lines)
    assert curve == assert_finished(folder, PIPELINED)
    assert curve[0] == read_curve(stopped_pipelined_run)[0]
    assert set(multiprocessing.active_children()) <= children  # the worker ended with the run
    assert_skipped_when_done(spec, PIPELINED, folder, curve)


def test_run_saved_with_a_reward_worker_resumes_without_one(
    stopped_pipelined_run: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A run saved with a reward worker can be resumed without one (``reward_worker`` "off", or "auto" deciding
    otherwise on a resumed sweep with more jobs or fewer cores) and finishes with a continuous curve."""
    folder = Path(shutil.copytree(stopped_pipelined_run, tmp_path / "run"))
    spec = RunSpec(TASK, parse_source(str(tiny_checkpoint)), 0)
    curve = run_one(spec, dataclasses.replace(PIPELINED, reward_worker="off"), folder, log=lambda line: None)
    assert curve == assert_finished(folder, PIPELINED)


# Learning starts before the first save, so a resume must restore the RNGs the agent has drawn from to match.
GT_RUN = dataclasses.replace(TINY, total_steps=60, learning_starts=10)
GT_SPEC = RunSpec(TASK, parse_source("gt"), 0)


@pytest.fixture(scope="module")
def uninterrupted_gt_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A ground-truth run of two evaluations, never interrupted."""
    folder = tmp_path_factory.mktemp("gt-uninterrupted") / "run"
    run_one(GT_SPEC, GT_RUN, folder, log=lambda line: None)
    assert_finished(folder, GT_RUN)
    return folder


@pytest.fixture(scope="module")
def stopped_gt_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run stopped after its first evaluation (copy it before resuming)."""
    folder = tmp_path_factory.mktemp("gt-stopped") / "run"
    assert curve_steps(run_one(GT_SPEC, GT_RUN, folder, log=lambda line: None, stop_after=1)) == [30]
    assert sorted(path.name for path in (folder / "state").iterdir()) == [
        "agent.safetensors",
        "replay_buffer.npz",
        "state.json",
    ]
    return folder


def test_kill_inside_the_state_swap_resumes_as_the_uninterrupted_run(
    stopped_gt_run: Path, uninterrupted_gt_run: Path, tmp_path: Path
) -> None:
    """A kill inside the state swap (``state`` renamed to ``state.old``, a half-written ``state.new``) loses
    nothing: the run resumes from ``state.old``, drops ``state.new``, and ends with exactly the curve and agent of
    the run that was never interrupted (same agent, replay buffer, RNGs and episode seeds after the resume)."""
    folder = Path(shutil.copytree(stopped_gt_run, tmp_path / "run"))
    (folder / "state").rename(folder / "state.old")
    (folder / "state.new").mkdir()
    (folder / "state.new" / "state.json").write_bytes(b"half-written")
    lines: list[str] = []
    curve = run_one(GT_SPEC, GT_RUN, folder, log=lines.append)
    assert any(line.endswith("resuming at step 30") for line in lines)
    assert curve == assert_finished(folder, GT_RUN)
    assert without_wall_time(curve) == without_wall_time(read_curve(uninterrupted_gt_run))
    assert_same_parameters(
        policy_parameters(folder / "agent.zip"), policy_parameters(uninterrupted_gt_run / "agent.zip")
    )


@pytest.mark.parametrize(
    "change,field",
    [({"learning_rate": 1e-3}, "settings.learning_rate"), ({"total_steps": 90}, "settings.total_steps")],
)
def test_a_run_of_other_settings_is_refused_unless_overwritten(
    change: dict[str, Any], field: str, stopped_gt_run: Path, tmp_path: Path
) -> None:
    """Resuming (or reusing) a run with other settings would record the new ones over an agent trained with the
    old: refused, naming the field; ``overwrite`` replaces the run."""
    folder = Path(shutil.copytree(stopped_gt_run, tmp_path / "run"))
    other = dataclasses.replace(GT_RUN, **change)
    with pytest.raises(RunMismatchError, match=rf"differs in: {re.escape(field)}.*--mode overwrite"):
        run_one(GT_SPEC, other, folder, log=lambda line: None)
    assert read_curve(folder) == read_curve(stopped_gt_run)  # nothing lost
    curve = run_one(GT_SPEC, other, folder, log=lambda line: None, overwrite=True)
    assert (
        curve == assert_finished(folder, other)
        and json.loads((folder / "run.json").read_text())["settings"][field.removeprefix("settings.")]
        == change[field.removeprefix("settings.")]
    )


def test_a_run_recorded_before_reward_scales_keeps_its_unscaled_reward(stopped_gt_run: Path, tmp_path: Path) -> None:
    """A ``run.json`` of a version that recorded no reward scale was rewarded unscaled: it resumes as a ``gt`` run
    of scale 1, and is refused, naming the field, as one of scale 0.1."""
    folder = Path(shutil.copytree(stopped_gt_run, tmp_path / "run"))
    record = json.loads((folder / "run.json").read_text())
    del record["reward_scale"], record["reward_mode"]
    (folder / "run.json").write_text(json.dumps(record))
    scaled = RunSpec(TASK, parse_source("gt", gt_reward_scale=0.1), 0)
    with pytest.raises(RunMismatchError, match=r"differs in: reward_scale\b"):
        run_one(scaled, GT_RUN, folder, log=lambda line: None)
    lines: list[str] = []
    run_one(GT_SPEC, GT_RUN, folder, log=lines.append)
    assert any(line.endswith("resuming at step 30") for line in lines)


def test_a_learned_run_recorded_before_reward_scales_was_normalized(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A learned run's ``run.json`` of a version that recorded no scale was the normalized reward, unscaled: it is
    that run, and differs in both fields from the default progress source."""
    earlier = RunSpec(
        TASK, parse_source(str(tiny_checkpoint), learned_reward_mode="normalized", learned_reward_scale=1), 0
    )
    folder = tmp_path / "run"
    folder.mkdir()
    record = run_record(earlier, TINY, [])
    del record["reward_scale"], record["reward_mode"]
    (folder / "run.json").write_text(json.dumps(record))
    assert differs_from(folder, run_record(earlier, TINY, [])) == []
    default = RunSpec(TASK, parse_source(str(tiny_checkpoint)), 0)
    assert differs_from(folder, run_record(default, TINY, [])) == ["reward_scale", "reward_mode"]


def test_a_sweep_refuses_a_finished_run_of_other_settings(tmp_path: Path) -> None:
    """A finished run is not reused for a sweep of another reward scale (its curve would pass for the new one's):
    the sweep stops before any run, naming the run and the field; ``overwrite`` runs it again."""
    out, config = tmp_path / "rl", dataclasses.replace(TINY, sources=("gt",), total_steps=30, eval_freq=30)
    run_sweep(config, out, log=lambda line: None)
    finished = out / TASK / "gt" / "seed0" / "curve.csv"
    curve = finished.read_text()
    rescaled = dataclasses.replace(config, gt_reward_scale=0.1)
    with pytest.raises(RunMismatchError, match=rf"{TASK} gt seed0 \(differs in: reward_scale\).*--mode overwrite"):
        run_sweep(rescaled, out, log=lambda line: None)
    assert finished.read_text() == curve
    run_sweep(rescaled, out, log=lambda line: None, overwrite=True)
    assert read_run(out / TASK / "gt" / "seed0")["reward_scale"] == 0.1


def test_the_reward_worker_pays_the_sources_scale(tiny_checkpoint: Path) -> None:
    """A learned run whose env steps in a reward worker rewards with its source's mode, scale and bonus, and shapes
    with the agent's discount."""
    spec = RunSpec(TASK, parse_source(f"{tiny_checkpoint}+sparse", learned_reward_mode="shaped-progress"), 0)
    venv = make_train_venv(spec, dataclasses.replace(TINY, reward_worker="on", gamma=0.9))
    try:
        assert isinstance(venv, PipelinedRewardVecEnv)
        transform = venv.transform
        assert (transform.mode, transform.reward_scale, transform.success_bonus) == ("shaped-progress", 5.0, 10.0)
        assert transform.gamma == 0.9
    finally:
        venv.close()


def test_a_finished_run_of_another_checkpoint_is_not_reported_as_this_one(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """A later sweep whose checkpoint folder has the same path but other weights does not get the earlier
    checkpoint's curve: its weights' checksum is part of the run's identity."""
    checkpoint = Path(shutil.copytree(tiny_checkpoint, tmp_path / "triplet"))
    spec, folder = RunSpec(TASK, parse_source(str(checkpoint)), 0), tmp_path / "run"
    config = dataclasses.replace(TINY, total_steps=30, eval_freq=30)
    run_one(spec, config, folder, log=lambda line: None)
    model = RewardModel.from_pretrained(checkpoint)
    with torch.no_grad():
        next(p for p in model.parameters() if p.requires_grad).add_(1.0)
    model.save_pretrained(checkpoint)
    with pytest.raises(RunMismatchError, match="differs in: checkpoint_sha256"):
        run_one(spec, config, folder, log=lambda line: None)


@pytest.mark.parametrize("damaged", ["state.json", "agent.safetensors", "replay_buffer.npz"])
def test_corrupt_saved_state_names_the_run_folder(damaged: str, stopped_gt_run: Path, tmp_path: Path) -> None:
    """An unreadable state file raises ``CorruptFileError`` naming the state and the folder to delete."""
    folder = Path(shutil.copytree(stopped_gt_run, tmp_path / "run"))
    (folder / "state" / damaged).write_bytes(b"\x80\x04not a state")
    with pytest.raises(
        CorruptFileError, match=rf"{re.escape(str(folder / 'state'))}.*delete {re.escape(str(folder))} "
    ):
        run_one(GT_SPEC, GT_RUN, folder, log=lambda line: None)


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def test_a_crafted_run_state_is_never_executed(stopped_gt_run: Path, tmp_path: Path) -> None:
    """Pickles planted in a run folder (an old-style ``progress.pkl``, an object array in the replay buffer) are
    refused with a one-line error; their payload never runs."""
    marker = tmp_path / "payload-ran"
    planted = Path(shutil.copytree(stopped_gt_run, tmp_path / "planted-progress"))
    (planted / "state" / "progress.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(CorruptFileError, match=r"is a pickle .* delete"):
        run_one(GT_SPEC, GT_RUN, planted, log=lambda line: None)
    buffer = Path(shutil.copytree(stopped_gt_run, tmp_path / "planted-buffer"))
    with open(buffer / "state" / "replay_buffer.npz", "wb") as handle:
        np.savez(handle, observations=np.array([_Payload(marker)], dtype=object))
    with pytest.raises(CorruptFileError, match=r"replay_buffer.npz is not a saved replay buffer"):
        run_one(GT_SPEC, GT_RUN, buffer, log=lambda line: None)
    assert not marker.exists()


# ------------------------------------------------------------ sweeps


@pytest.fixture(scope="module")
def tcn_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: Any, tiny_backbone: Any) -> Path:
    """A TCN checkpoint (image goals, stored for the tiny dataset's tasks only), heads finetuning, a few steps."""
    from vlm_reward_wrappers.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("tcn") / "tcn"
    config = TrainConfig(objective="tcn", finetune="heads", batch_size=8, max_steps=4, eval_every=2)
    train(config, tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    return out


def benchmark_with_rows(root: Path, checkpoint: Path, row: str, seeds: range) -> Path:
    """An offline benchmark folder whose ``checkpoints/<row>-seed<k>`` link to ``checkpoint``."""
    (root / "checkpoints").mkdir(parents=True)
    for seed in seeds:
        (root / "checkpoints" / f"{row}-seed{seed}").symlink_to(checkpoint, target_is_directory=True)
    return root


def test_sweep_resolves_benchmark_rows_and_seeds(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Row names resolve to the benchmark's checkpoint of the agent's seed (modulo the seeds it trained), with
    ``+sparse`` keeping the bonus; checkpoint folders keep their folder name; ``gt_seeds`` applies to ``gt`` only;
    a missing row says to run the benchmark first."""
    bench = benchmark_with_rows(tmp_path / "bench", tiny_checkpoint, "triplet", range(2))
    mine = tmp_path / "my-reward"
    mine.symlink_to(tiny_checkpoint, target_is_directory=True)
    config = dataclasses.replace(
        TINY,
        sources=("sparse", "gt", "triplet", "triplet+sparse", str(mine)),
        seeds=(0, 1, 2),
        gt_seeds=(5,),
        success_bonus=BONUS,
        benchmark=str(bench),
    )
    runs = planned_runs(config)
    by_source: dict[str, list[RunSpec]] = {}
    for spec in runs:
        by_source.setdefault(spec.source.name, []).append(spec)
    assert {name: [spec.seed for spec in specs] for name, specs in by_source.items()} == {
        "triplet": [0, 1, 2],
        "triplet+sparse": [0, 1, 2],
        "my-reward": [0, 1, 2],
        "sparse": [0, 1, 2],
        "gt": [5],
    }
    assert all(spec.task == TASK for spec in runs)
    assert [spec.source.learned for spec in runs] == [True] * 9 + [False] * 4  # learned runs start first
    checkpoints = [Path(str(spec.source.checkpoint)).name for spec in by_source["triplet"]]
    assert checkpoints == ["triplet-seed0", "triplet-seed1", "triplet-seed0"]
    assert {(spec.source.dense, spec.source.success_bonus) for spec in by_source["triplet"]} == {("learned", 0.0)}
    plus = by_source["triplet+sparse"]
    assert [Path(str(spec.source.checkpoint)).name for spec in plus] == checkpoints
    assert {(spec.source.dense, spec.source.success_bonus) for spec in plus} == {("learned", BONUS)}
    mine_source = RewardSource("my-reward", "learned", str(mine), 0.0, 5.0, "shaped-progress")
    assert {spec.source for spec in by_source["my-reward"]} == {mine_source}
    assert by_source["sparse"][0].source == RewardSource("sparse", "none", success_bonus=BONUS)
    assert by_source["gt"][0].source == RewardSource("gt", "gt")
    plus_mine = resolve_source(f"{mine}+sparse", 0, config)
    assert plus_mine == RewardSource("my-reward+sparse", "learned", str(mine), BONUS, 5.0, "shaped-progress")
    check_runs(runs)  # a triplet (sentence-goal) checkpoint rewards any task

    missing = re.escape(f"no {bench}/checkpoints/vip-seed*")
    with pytest.raises(FileNotFoundError, match=rf"'vip'.*{missing}.*vlm-rewards benchmark"):
        resolve_source("vip", 0, config)
    out = tmp_path / "sweep"  # a benchmark folder that is no preset's: its rows are not trained on the fly
    with pytest.raises(FileNotFoundError, match="Run `vlm-rewards benchmark --out"):
        run_sweep(dataclasses.replace(config, sources=("sparse", "vip+sparse")), out, log=lambda line: None)
    assert not out.exists()


def test_sweep_resolves_hub_repo_ids_from_the_hub_cache(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A source that is neither a checkpoint folder nor a benchmark row but a Hub repo id is its snapshot in the
    local Hub cache (at ``@revision``; ``+sparse`` too), named by the repo's name; it is no benchmark row; a repo
    that is not in the cache (offline) says so in one line."""
    import huggingface_hub
    from test_portability import fake_hub_snapshot

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    main = fake_hub_snapshot(tmp_path / "hub", "someone/triplet-mw", {p.name: p for p in tiny_checkpoint.iterdir()})
    older = main.parent / ("fe" * 20)
    shutil.copytree(main, older)
    (main.parent.parent / "refs" / "v1").write_text(older.name)
    bench = benchmark_with_rows(tmp_path / "bench", tiny_checkpoint, "triplet", range(1))
    sources = ("triplet", "someone/triplet-mw", "someone/triplet-mw@v1+sparse", "sparse")
    config = dataclasses.replace(TINY, sources=sources, success_bonus=BONUS, benchmark=str(bench))

    assert resolve_source("someone/triplet-mw", 0, config) == RewardSource(
        "triplet-mw", "learned", str(main), 0.0, 5.0, "shaped-progress"
    )
    plus = resolve_source("someone/triplet-mw@v1+sparse", 1, config)
    assert plus == RewardSource("triplet-mw@v1+sparse", "learned", str(older), BONUS, 5.0, "shaped-progress")
    assert benchmark_rows(config) == ["triplet"]
    names = {spec.source.name for spec in planned_runs(config)}
    assert names == {"triplet", "triplet-mw", "triplet-mw@v1+sparse", "sparse"}

    with pytest.raises(FileNotFoundError, match=r"'someone/else'.*nor a row.*Hub repo id.*cannot be had") as error:
        resolve_source("someone/else", 0, config)
    assert "\n" not in str(error.value)
    monkeypatch.chdir(tmp_path)  # `bench/nope`: a missing local path beside the folder `bench`, not a Hub lookup
    with pytest.raises(FileNotFoundError, match="no checkpoint at bench/nope: bench is a local folder without it"):
        resolve_source("bench/nope+sparse", 0, config)


def test_sweep_rewards_with_the_bundled_model_by_name(tmp_path: Path) -> None:
    """``bundled`` (and ``bundled+sparse``) is the package's bundled model, whatever the benchmark folder holds: no
    benchmark row to train, progress calibrated for its tasks."""
    config = dataclasses.replace(
        TINY, sources=("bundled", "bundled+sparse", "sparse"), benchmark=str(tmp_path / "quick")
    )
    assert resolve_source("bundled+sparse", 3, config) == RewardSource(
        "bundled+sparse", "learned", str(BUNDLED_CHECKPOINT), 10.0, 5.0, "shaped-progress"
    )
    assert benchmark_rows(config) == []
    runs = planned_runs(config)
    assert [spec.source.name for spec in runs] == ["bundled", "bundled+sparse", "sparse"]
    check_runs(runs)  # a goal and a calibration for the task


def test_sweep_gives_distinct_sources_distinct_run_folders(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Two different reward sources whose run folders would be the same are refused before anything runs."""
    assert tiny_checkpoint.name == "triplet"
    bench = benchmark_with_rows(tmp_path / "bench", tiny_checkpoint, "triplet", range(1))
    config = dataclasses.replace(TINY, sources=("triplet", str(tiny_checkpoint)), benchmark=str(bench))
    with pytest.raises(ValueError, match="would share the run folders of 'triplet'"):
        planned_runs(config)
    distinct = dataclasses.replace(config, sources=("triplet", "sparse"))
    folders = [run_folder(tmp_path / "out", spec) for spec in planned_runs(distinct)]
    assert len(set(folders)) == len(folders) == 2


def test_sweep_maps_agent_seeds_to_benchmark_seeds_numerically(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """With benchmark seeds 0..11, agent seed ``k`` is rewarded by ``<row>-seed<k>``, as the docstring says."""
    bench = benchmark_with_rows(tmp_path / "bench", tiny_checkpoint, "triplet", range(12))
    config = dataclasses.replace(TINY, sources=("triplet",), benchmark=str(bench))
    resolved = [Path(str(resolve_source("triplet", seed, config).checkpoint)).name for seed in range(12)]
    assert resolved == [f"triplet-seed{seed}" for seed in range(12)]


def test_sweep_refuses_a_task_without_a_goal_before_training(
    tcn_checkpoint: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """An image-goal checkpoint asked for a task it holds no goal image for fails the whole sweep with a
    ``ValueError`` naming source and task before any run starts; the tasks it holds pass."""
    good = dataclasses.replace(TINY, tasks=(TASK,), sources=(str(tcn_checkpoint), str(tiny_checkpoint)))
    check_runs(planned_runs(good))
    bad = dataclasses.replace(good, tasks=(TASK, "window-open-v3"), sources=("sparse", str(tcn_checkpoint)))
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"reward source 'tcn' has no goal for window-open-v3.*Drop the task"):
        run_sweep(bad, out, log=lambda line: None)
    assert not out.exists()  # no run started, not even the sparse ones


def test_sweep_refuses_progress_from_a_checkpoint_without_calibration(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint written before progress calibration existed cannot give the default ``progress`` reward nor
    ``shaped-progress``: the sweep fails before any run, naming the source, the task and the mode to use;
    ``normalized`` accepts it."""
    old = Path(shutil.copytree(tiny_checkpoint, tmp_path / "old"))
    config_json = json.loads((old / "config.json").read_text())
    config_json.pop("progress_calibration")
    (old / "config.json").write_text(json.dumps(config_json))
    config = dataclasses.replace(TINY, sources=("sparse", str(old)))
    out = tmp_path / "sweep"
    with pytest.raises(ValueError, match=r"'old' cannot give progress on reach-v3.*learned_reward_mode='normalized'"):
        run_sweep(config, out, log=lambda line: None)
    assert not out.exists()
    with pytest.raises(ValueError, match=r"'old' cannot give progress on reach-v3"):
        check_runs(planned_runs(dataclasses.replace(config, learned_reward_mode="shaped-progress")))
    check_runs(planned_runs(dataclasses.replace(config, learned_reward_mode="normalized")))


def test_wandb_mirrors_each_run_and_resumes_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``wandb=PROJECT`` logs a run to Weights & Biases (offline here: no network) under one id per run folder, which
    the resumed run reuses; the run's curve and TensorBoard logs are complete as without W&B."""
    pytest.importorskip("wandb", reason="the wandb extra is not installed")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    folder, config = tmp_path / "run", dataclasses.replace(GT_RUN, wandb="vlm-rewards-test")
    run_one(GT_SPEC, config, folder, log=lambda line: None, stop_after=1)
    curve = run_one(GT_SPEC, config, folder, log=lambda line: None)
    assert curve == assert_finished(folder, GT_RUN)
    logged = sorted((folder / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(logged) == 2 and all(path.stat().st_size > 0 for path in logged)
    assert logged[0].name == logged[1].name  # one W&B run id, resumed


def test_wandb_without_the_extra_fails_before_any_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for W&B without it installed names the extra to install, before any run starts."""
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb fails as if it were not installed
    out = tmp_path / "sweep"
    with pytest.raises(MissingExtraError, match=r'--wandb needs wandb.*pip install "vlm_reward_wrappers\[wandb\]"'):
        run_sweep(dataclasses.replace(TINY, wandb="project"), out, log=lambda line: None)
    assert not out.exists()


# ------------------------------------------------------------ report

STEPS = [2000, 4000, 6000, 8000]
BENCH_CHECKPOINTS = "bench/checkpoints"
CAMERA_WARNING = "bench/checkpoints/triplet-seed0: frames from camera corner2, trained on corner"
# (task, source, seed): success rates at STEPS (a shorter list: a run still going)
CURVES: dict[tuple[str, str, int], list[float]] = {
    ("drawer-close-v3", "triplet", 0): [0.0, 0.4, 0.6, 1.0],  # mean 0.5, 50% at 6000
    ("drawer-close-v3", "triplet", 1): [0.2, 0.6, 0.8, 0.8],  # mean 0.6, 50% at 4000
    ("drawer-close-v3", "sparse", 0): [0.0, 0.0, 0.2, 0.2],  # mean 0.1
    ("drawer-close-v3", "sparse", 1): [0.0, 0.0, 0.0, 0.4],  # mean 0.1
    ("drawer-close-v3", "gt", 0): [0.6, 1.0, 1.0, 1.0],  # mean 0.9, 50% at 2000
    ("reach-v3", "triplet", 0): [0.6, 0.8],  # running; mean 0.7, 50% at 2000
    ("reach-v3", "triplet", 1): [0.0, 0.0, 0.4, 0.4],  # mean 0.2, never 50%
    ("reach-v3", "sparse", 0): [0.0, 0.0, 0.0, 0.0],  # first two: mean 0.0
    ("reach-v3", "sparse", 1): [0.2, 0.2, 0.2, 0.2],  # mean 0.2
    ("reach-v3", "gt", 0): [0.0, 0.0, 0.0, 0.0],
}
# The table's rows (tasks, then sources, sorted), by hand from CURVES: task | reward | seeds | steps | final
# success | mean success over the curve | steps to 50% | minus sparse (paired by seed, at the steps both have) |
# offline ranking acc. | VOC | steps/s
EXPECTED_ROWS = [
    "drawer-close-v3 | gt | 1 | 8k | 1.00 | 0.90 | 2k (1/1 seeds) | +0.80 [+0.80, +0.80] (1 seed) | — | — | — | 100",
    "drawer-close-v3 | sparse | 2 | 8k | 0.30 [0.20, 0.40] | 0.10 [0.10, 0.10] | not reached (0/2) | — | — | — | — "
    "| 100 [100, 100]",
    "drawer-close-v3 | triplet | 2 | 8k | 0.90 [0.80, 1.00] | 0.55 [0.50, 0.60] | 5k (2/2 seeds) "
    "| +0.45 [+0.40, +0.50] (2 seeds) | 0.700 [0.600, 0.800] | 0.800 [0.700, 0.900] | — | 100 [100, 100]",
    "reach-v3 | gt | 1 | 8k | 0.00 | 0.00 | not reached (0/1) | +0.00 [+0.00, +0.00] (1 seed) | — | — | — | 100",
    "reach-v3 | sparse | 2 | 8k | 0.10 [0.00, 0.20] | 0.10 [0.00, 0.20] | not reached (0/2) | — | — | — | — "
    "| 100 [100, 100]",
    "reach-v3 | triplet | 2 | 4k (running) | 0.60 [0.40, 0.80] | 0.45 [0.20, 0.70] | 2k (1/2 seeds) "
    "| +0.35 [+0.00, +0.70] (2 seeds) | — | — | — | 100 [100, 100]",
]


def write_fake_run(out: Path, task: str, source: str, seed: int, success: list[float]) -> None:
    folder = out / task / source / f"seed{seed}"
    folder.mkdir(parents=True)
    checkpoint = str(out / BENCH_CHECKPOINTS / f"triplet-seed{seed}") if source == "triplet" else None
    record = {
        "task": task,
        "source": source,
        "checkpoint": checkpoint,
        "success_bonus": 1.0 if source == "sparse" else 0.0,
        **({"reward_scale": 5.0, "reward_mode": "progress"} if source == "triplet" else {}),  # sparse, gt: 0.3's
        "seed": seed,
        "agent": "SAC",
        "settings": {"total_steps": 8000, "eval_freq": 2000, "batch_size": 256},
        "warnings": [CAMERA_WARNING] if (task, source, seed) == ("drawer-close-v3", "triplet", 0) else [],
        "reward_worker": source == "triplet",
    }
    (folder / "run.json").write_text(json.dumps(record))
    with open(folder / "curve.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CURVE_FIELDS)
        writer.writeheader()
        for step, rate in zip(STEPS[: len(success)], success, strict=True):
            row = {"step": step, "success_rate": rate, "gt_return": 100 * rate, "reward_return": rate}
            writer.writerow({**row, "train_success_rate": rate, "wall_s": step / 100})
    if len(success) == len(STEPS):
        (folder / "done.json").write_text(json.dumps({"steps": STEPS[-1], "wall_s": STEPS[-1] / 100}))


def test_report_from_run_folders(tmp_path: Path) -> None:
    """The report's table holds, per task and source over seeds, the final and mean success (mean [min, max]), the
    steps to 50% success (or "not reached"), the mean success minus ``sparse``'s paired by seed at equal steps, the
    offline metrics of the checkpoints' benchmark evaluation and the speed; it is written to ``report.md`` with the
    runs' warnings, ``summary.json`` holds the numbers and ``success_curves.png`` the curves."""
    out = tmp_path / "rl"
    for (task, source, seed), success in CURVES.items():
        write_fake_run(out, task, source, seed, success)
    for seed, (accuracy, voc, headline, auc) in enumerate([(0.75, 0.5, 0.6, 0.7), (0.85, 0.7, 0.8, 0.9)]):
        metrics = out / "bench" / "eval" / f"triplet-seed{seed}" / "train-tasks" / "metrics.json"
        metrics.parent.mkdir(parents=True)
        offline = {"ranking_accuracy": accuracy, "voc": voc, "time_balanced_accuracy": headline, "success_auroc": auc}
        per_task = {"drawer-close-v3": offline}  # nothing for reach-v3
        metrics.write_text(json.dumps({"per_task": per_task}))

    table = write_rl_report(out)
    assert table.splitlines()[2:] == [f"| {row} |" for row in EXPECTED_ROWS]

    report = (out / "report.md").read_text()
    assert table in report and "total_steps 8000" in report
    # what each source paid, from the records (sparse's and gt's carry no scale: written before 0.4, unscaled)
    for paid in ("`triplet`: 5 x progress (", "`sparse`: 1 x success", "`gt`: 1 x Meta-World's reward (0-10)"):
        assert paid in report
    assert f"## Warnings\n\n- drawer-close-v3 triplet: {CAMERA_WARNING}" in report
    summary = json.loads((out / "summary.json").read_text())
    by_key = {(row["task"], row["source"]): row for row in summary["rows"]}
    assert by_key["drawer-close-v3", "triplet"]["final_success"] == [1.0, 0.8]
    # Across tasks, finished runs only: triplet's reach-v3 seed 0 is still running, so seed 1 is its one run that
    # has both tasks; its IQM is that run's mean over the two tasks' scores (0.6 and 0.2).
    across = summary["across_tasks"]["triplet"]
    assert across["tasks"] == ["drawer-close-v3", "reach-v3"] and across["runs"] == 1
    assert across["iqm"] == pytest.approx(0.4) and "## Across tasks (rliable)" in report
    assert by_key["drawer-close-v3", "triplet"]["steps_to_50"] == [6000, 4000]
    assert by_key["drawer-close-v3", "triplet"]["mean_success_minus_sparse"] == pytest.approx([0.4, 0.5])
    assert by_key["reach-v3", "triplet"]["steps_to_50"] == [2000, None]  # never reached: null, JSON has no NaN
    assert by_key["reach-v3", "triplet"]["done"] is False and by_key["reach-v3", "sparse"]["done"] is True
    assert by_key["drawer-close-v3", "triplet"]["ranking_accuracy"] == [0.75, 0.85]
    # One (task, learned source) row has offline measures: too few to correlate with the online gain.
    assert summary["offline_online"]["time_balanced_accuracy"] == {"rows": 1, "spearman": None}
    assert "| time-balanced accuracy (the headline) | 1 | too few rows |" in report
    # The gate's verdict, where the sweep gated a source on a task: pass, or its failures.
    # The gate's probe gives a success AUC for any checkpoint (every checkpoint's, beside the first one's verdict);
    # a probe without success frames has none.
    probes = {"triplet-seed0": {"success_auroc": 0.9}, "triplet-seed1": {"success_auroc": 0.8}}
    verdicts = {
        "triplet": {
            "drawer-close-v3": {"gate": [], "checkpoints": probes},
            "reach-v3": {"gate": ["no success AUC"], "checkpoints": {"triplet-seed0": {"success_auroc": None}}},
        }
    }
    gated_rows = summary_rows(read_results(out), gate=verdicts)
    gated = markdown_table(gated_rows)
    assert "| pass (0.85 [0.80, 0.90]) |" in gated and "| fails: no success AUC |" in gated
    assert [row["gate_success_auroc"] for row in gated_rows if row["source"] == "triplet"] == [[0.9, 0.8], []]
    assert offline_online(gated_rows)["gate_success_auroc"]["rows"] == 1
    png = (out / "success_curves.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000

    with pytest.raises(FileNotFoundError, match="no RL runs"):
        write_rl_report(tmp_path / "empty")


# ------------------------------------------------------------ config and CLI


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"eval_freq": 45}, r"eval_freq \(45\) must be a positive multiple of max_episode_steps \(30\)"),
        ({"eval_freq": 0}, r"eval_freq \(0\) must be a positive multiple"),
        ({"total_steps": 100}, r"total_steps \(100\) must be a positive multiple of eval_freq \(30\)"),
        ({"reward_worker": "sometimes"}, r"RLConfig.reward_worker must be one of 'auto', 'on', 'off'; got 'sometimes'"),
        ({"seeds": ()}, "at least one task, one reward source and one seed"),
        ({"tasks": ("no-such-task-v3",)}, "no-such-task-v3"),
        ({"eval_episodes": 0}, "eval_episodes must be positive, not 0"),
        ({"max_episode_steps": 0}, "max_episode_steps must be positive, not 0"),
        ({"jobs": -1}, "jobs must be positive"),
        ({"gamma": 1.5}, r"gamma and tau in \(0, 1\]"),
        pytest.param(
            {"device": "cuda"},
            "no CUDA GPU is visible",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here"),
        ),
    ],
)
def test_config_refuses_inconsistent_settings(changes: dict[str, Any], message: str) -> None:
    """Settings a run cannot honour raise ``ValueError`` saying which and why."""
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **changes)


@pytest.mark.parametrize("total_steps", [0, -60])
def test_config_refuses_runs_without_steps(total_steps: int) -> None:
    """A run of no steps is refused when the config is made, not by a missing file after the run."""
    with pytest.raises(ValueError, match="total_steps"):
        dataclasses.replace(TINY, total_steps=total_steps)


def test_cli_rl_runs_the_sweep_reports_and_skips_done_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``vlm-rewards rl --preset tiny`` trains its runs (sparse and gt: no checkpoint needed), writes the report and
    returns 0; run again, it finds every run done and trains nothing."""
    out = tmp_path / "rl-tiny"
    argv = ["rl", "--preset", "tiny", "--out", str(out), "--total-steps", "60", "--eval-freq", "30"]
    argv += ["--max-episode-steps", "30"]
    assert cli_main(argv) == 0
    printed = capsys.readouterr().out
    assert "2 runs, 0 done, 2 to run" in printed and "| drawer-close-v3 | sparse |" in printed
    for source in ("sparse", "gt"):
        folder = out / "drawer-close-v3" / source / "seed0"
        assert curve_steps(read_curve(folder)) == [30, 60] and (folder / "done.json").is_file()
    report = (out / "report.md").read_text()
    assert "| drawer-close-v3 | gt |" in report and (out / "summary.json").is_file()
    curve_written = (out / "drawer-close-v3" / "gt" / "seed0" / "curve.csv").stat().st_mtime_ns

    assert cli_main(argv) == 0
    assert "2 runs, 2 done, 0 to run" in capsys.readouterr().out
    assert (out / "drawer-close-v3" / "gt" / "seed0" / "curve.csv").stat().st_mtime_ns == curve_written
    assert (out / "report.md").read_text() == report  # the same runs, the same report


def test_a_fresh_machine_trains_the_benchmark_row_before_the_sweep(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no checkpoints in ``runs/<preset>``, a sweep rewarded by a benchmark row first runs that offline preset
    for the row alone (what ``vlm-rewards rl --preset quick`` does on a fresh machine), then trains on it."""
    monkeypatch.setenv("VLM_REWARDS_CACHE", str(tmp_path / "cache"))
    bench = tmp_path / "runs" / "tiny"  # the offline preset named by the folder
    config = dataclasses.replace(TINY, sources=("triplet",), benchmark=str(bench), total_steps=30, eval_freq=30)
    lines: list[str] = []
    run_sweep(config, tmp_path / "rl", log=lines.append)
    assert any("running the tiny benchmark for them first" in line for line in lines)
    checkpoints = sorted(path.name for path in (bench / "checkpoints").iterdir() if is_checkpoint(path))
    assert checkpoints == ["triplet-seed0", "triplet-seed1"]
    run = read_run(tmp_path / "rl" / TASK / "triplet" / "seed0")
    assert run["checkpoint"] == str(bench / "checkpoints" / "triplet-seed0")
    assert curve_steps(read_curve(tmp_path / "rl" / TASK / "triplet" / "seed0")) == [30]


def test_sweep_gates_each_learned_reward_before_training(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Before the runs, each learned source's checkpoint is probed on full-length rollouts of every task (2 clean
    experts, 2 with action noise 1.0, 2 random); the verdicts go to ``gate.json``, a failure is logged as a warning,
    and the report has the gate's section."""
    config = dataclasses.replace(TINY, sources=(str(tiny_checkpoint),), total_steps=30, eval_freq=30)
    lines: list[str] = []
    out = tmp_path / "rl"
    run_sweep(config, out, log=lines.append)
    rollouts = DemoDataset(next(path for path in (out / "gate").iterdir() if path.is_dir()))
    assert [(info.kind, info.noise_std, info.num_steps) for info in rollouts.episodes] == [
        ("expert", 0.0, 30),
        ("expert", 1.0, 30),
        ("expert", 0.0, 30),
        ("expert", 1.0, 30),
        ("random", 0.0, 30),
        ("random", 0.0, 30),
    ]
    verdict = json.loads((out / "gate.json").read_text())["triplet"][TASK]
    table = score_dataset(RewardModel.from_pretrained(tiny_checkpoint), rollouts).table
    assert table is not None
    expected = probe_task(table)
    assert verdict["checkpoints"]["triplet"] == json.loads(json.dumps({**expected, "gate": gate(expected)}))
    assert verdict["gate"] == gate(expected)
    warned = [line for line in lines if "fails the gate" in line]
    assert warned == (
        [f"warning: the triplet reward fails the gate on {TASK}: {'; '.join(gate(expected))}"] if gate(expected) else []
    )
    write_rl_report(out)
    report = (out / "report.md").read_text()
    assert "## Gate: the learned rewards off the expert path" in report and f"triplet on {TASK}" in report
