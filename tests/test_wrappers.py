"""The reward wrappers on real Meta-World envs, with a real checkpoint made by the package.

Expected values are computed from an independently loaded ``RewardModel`` and
frames rendered from separate reference envs driven with the same seeds and actions.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import cloudpickle
import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecCheckNan

from vlm_reward_wrappers import (
    FrameRenderer,
    FrameToInfo,
    VectorVLMReward,
    VLMRewardVecEnv,
    VLMRewardWrapper,
    make_metaworld_env,
)
from vlm_reward_wrappers.info_keys import FRAME as FRAME_KEY
from vlm_reward_wrappers.models import CheckpointError, RewardModel
from vlm_reward_wrappers.rendering import RenderingUnavailableError
from vlm_reward_wrappers.tasks import TASKS
from vlm_reward_wrappers.wrappers import NonFiniteRewardError, load_reward_model

TASK = "reach-v3"
GOAL = TASKS[TASK].goal
SIZE = 32  # the fixture checkpoint's frame size
GAMMA = 0.9


def metaworld(seed: int = 0, max_episode_steps: int | None = None) -> gym.Env:
    return make_metaworld_env(TASK, seed=seed, image_size=SIZE, max_episode_steps=max_episode_steps)


def random_actions(count: int, num_envs: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (count, 4) if num_envs is None else (count, num_envs, 4)
    return np.random.default_rng(seed).uniform(-1, 1, size=shape).astype(np.float32)


@pytest.fixture(scope="module")
def model(tiny_checkpoint: Path) -> RewardModel:
    """A model loaded apart from the wrappers' cache, for expected values."""
    return RewardModel.from_pretrained(tiny_checkpoint)


def scores(model: RewardModel, frames: list[np.ndarray]) -> np.ndarray:
    return model.reward(np.stack(frames), GOAL).astype(np.float64)


def potentials(model: RewardModel, frames: list[np.ndarray]) -> np.ndarray:
    stats = model.config.reward_stats
    return (scores(model, frames) - stats["mean"]) / stats["std"]


def reference_episodes(
    model: RewardModel, seed: int, max_episode_steps: int, episodes: list[np.ndarray]
) -> list[list[np.ndarray]]:
    """Frames (the reset frame first) of consecutive episodes of an unwrapped env with these actions."""
    env = metaworld(seed, max_episode_steps)
    renderer = FrameRenderer(env, model.config.camera, SIZE, SIZE)
    runs = []
    env.reset(seed=seed)
    for index, actions in enumerate(episodes):
        if index:
            env.reset()
        frames = [renderer.render()]
        for action in actions:
            *_, terminated, truncated, _ = env.step(action)
            frames.append(renderer.render())
        assert terminated or truncated or index == len(episodes) - 1
        runs.append(frames)
    renderer.close()
    env.close()
    return runs


@contextmanager
def batch_sizes(module: torch.nn.Module) -> Iterator[list[int]]:
    """The batch size of every forward pass of ``module`` inside the block."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda module, inputs, output: calls.append(len(output)))
    try:
        yield calls
    finally:
        handle.remove()


# ------------------------------------------------------------ single env


def test_reward_is_the_model_score_and_ground_truth_is_in_info(tiny_checkpoint: Path, model: RewardModel) -> None:
    env = VLMRewardWrapper(metaworld(seed=3), tiny_checkpoint)
    reference = metaworld(seed=3)
    renderer = FrameRenderer(reference, model.config.camera, SIZE, SIZE)
    assert env.goal == GOAL  # found from the Meta-World task
    assert env.observation_space == reference.observation_space and env.action_space == reference.action_space

    obs, _ = env.reset(seed=3)
    np.testing.assert_allclose(obs, reference.reset(seed=3)[0], rtol=0, atol=1e-8)
    for step, action in enumerate(random_actions(4)):
        with batch_sizes(env.scorer.model.backbone.clip.token_embedding) as text_passes:
            obs, reward, terminated, truncated, info = env.step(action)
        assert not (step and text_passes), "the goal's text embedding is computed once"
        ref_obs, gt_reward, ref_terminated, ref_truncated, ref_info = reference.step(action)
        np.testing.assert_allclose(obs, ref_obs, rtol=0, atol=1e-8)
        assert (terminated, truncated) == (ref_terminated, ref_truncated)
        assert info["gt_reward"] == gt_reward != reward
        assert reward == info["vlm_reward"] == info["vlm_score"]
        assert reward == pytest.approx(scores(model, [renderer.render()])[0], abs=1e-6)
        assert info["is_success"] is bool(ref_info["success"])
    recorded = env.spec.additional_wrappers[-1]
    assert recorded.name == "VLMRewardWrapper" and recorded.kwargs["checkpoint"] == str(tiny_checkpoint)
    renderer.close()
    env.close()
    reference.close()


def test_normalized_and_shaped_rewards(tiny_checkpoint: Path, model: RewardModel) -> None:
    stats = model.config.reward_stats
    actions = random_actions(3, seed=1)
    shaped = VLMRewardWrapper(metaworld(seed=1), tiny_checkpoint, reward_mode="shaped", gamma=GAMMA)
    normalized = VLMRewardWrapper(metaworld(seed=1), tiny_checkpoint, reward_mode="normalized")
    renderer = FrameRenderer(shaped, model.config.camera, SIZE, SIZE)
    shaped.reset(seed=1)
    normalized.reset(seed=1)
    frames, rewards = [renderer.render()], []
    for action in actions:
        _, reward, *_, info = shaped.step(action)
        _, normalized_reward, *_, normalized_info = normalized.step(action)
        frames.append(renderer.render())
        rewards.append(reward)
        assert normalized_reward == pytest.approx(
            (normalized_info["vlm_score"] - stats["mean"]) / stats["std"], abs=1e-9
        )
        assert normalized_info["vlm_score"] == pytest.approx(info["vlm_score"], abs=1e-9)  # same seed, same frames
    phi = potentials(model, frames)
    np.testing.assert_allclose(rewards, GAMMA * phi[1:] - phi[:-1], rtol=0, atol=1e-4)
    renderer.close()
    shaped.close()
    normalized.close()


def test_success_bonus_is_added_on_success_steps(tiny_checkpoint: Path) -> None:
    from metaworld.policies import ENV_POLICY_MAP

    env = VLMRewardWrapper(metaworld(seed=0), tiny_checkpoint, success_bonus=10.0)
    policy = ENV_POLICY_MAP[TASK]()
    obs, _ = env.reset(seed=0)
    successes = 0
    for _ in range(150):  # the expert reaches the goal after about 75 steps
        obs, reward, _, _, info = env.step(policy.get_action(obs))
        assert reward == pytest.approx(info["vlm_score"] + 10.0 * info["is_success"], abs=1e-9)
        successes += info["is_success"]
        if successes >= 2:
            break
    assert successes >= 2, "the expert should reach the goal"
    env.close()


def test_non_finite_scores_raise(tiny_checkpoint: Path, tmp_path: Path) -> None:
    broken = RewardModel.from_pretrained(tiny_checkpoint)
    with torch.no_grad():
        for parameter in broken.parameters():
            if parameter.requires_grad:
                parameter.fill_(float("nan"))
    broken.save_pretrained(tmp_path / "nan")
    pendulum = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=SIZE, height=SIZE)
    env = VLMRewardWrapper(pendulum, tmp_path / "nan", goal="balance the pole")
    env.reset(seed=0)
    with pytest.raises(NonFiniteRewardError, match="nan"):
        env.step(env.action_space.sample())
    env.close()


# ------------------------------------------------------------ errors and warnings


def test_env_without_rgb_array_frames_raises(tiny_checkpoint: Path) -> None:
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        VLMRewardWrapper(gym.make("InvertedPendulum-v5"), tiny_checkpoint, goal="balance the pole")


def test_missing_or_broken_checkpoint_names_the_path(tiny_checkpoint: Path, tmp_path: Path) -> None:
    env = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=SIZE, height=SIZE)
    missing = tmp_path / "no-such-checkpoint"
    with pytest.raises(CheckpointError, match=re.escape(str(missing))):
        VLMRewardWrapper(env, missing, goal="balance the pole")
    truncated = Path(shutil.copytree(tiny_checkpoint, tmp_path / "truncated"))
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match=re.escape(str(weights))):
        VLMRewardWrapper(env, truncated, goal="balance the pole")
    env.close()


def test_goal_errors(tiny_checkpoint: Path) -> None:
    env = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=SIZE, height=SIZE)
    with pytest.raises(ValueError, match="goal is empty"):
        VLMRewardWrapper(env, tiny_checkpoint, goal="  ")
    with pytest.raises(ValueError, match="goal="):
        VLMRewardWrapper(env, tiny_checkpoint)  # not a Meta-World task: no goal to infer
    with pytest.raises(ValueError, match="reward_mode must be one of"):
        VLMRewardWrapper(env, tiny_checkpoint, goal="balance the pole", reward_mode="sparse")
    env.close()


def test_camera_or_size_unlike_the_checkpoint_warns(tiny_checkpoint: Path) -> None:
    env = metaworld()
    with pytest.warns(UserWarning, match="camera 'corner2'.*trained on 'corner'"):
        VLMRewardWrapper(env, tiny_checkpoint, camera="corner2").close()
    with pytest.warns(UserWarning, match="48-px.*trained on 32-px"):
        VLMRewardWrapper(env, tiny_checkpoint, image_size=48).close()
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*trained on")
        VLMRewardWrapper(env, tiny_checkpoint, camera="corner", image_size=SIZE).close()
    env.close()


# ------------------------------------------------------------ one model per process, pickling


def test_one_model_per_process_reloaded_when_the_checkpoint_changes(tiny_checkpoint: Path, tmp_path: Path) -> None:
    checkpoint = Path(shutil.copytree(tiny_checkpoint, tmp_path / "copy"))
    pendulums = [gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=SIZE, height=SIZE) for _ in range(2)]
    first, second = (VLMRewardWrapper(env, checkpoint, goal="balance the pole") for env in pendulums)
    assert first.scorer.model is second.scorer.model is load_reward_model(checkpoint)
    config = checkpoint / "config.json"
    os.utime(config, ns=(config.stat().st_atime_ns, config.stat().st_mtime_ns + 10**9))  # saved again
    assert load_reward_model(checkpoint) is not first.scorer.model
    first.close()
    second.close()


def test_pickled_env_holds_no_model_and_scores_the_same(tiny_checkpoint: Path) -> None:
    env = VLMRewardWrapper(metaworld(seed=5), tiny_checkpoint, reward_mode="shaped")
    env.reset(seed=5)
    env.step(random_actions(1)[0])
    weights_bytes = sum(tensor.numel() * tensor.element_size() for tensor in env.scorer.model.state_dict().values())
    # Meta-World's own env pickles its MuJoCo model and data (tens of MB), so measure what the wrapper adds.
    added = len(cloudpickle.dumps(env)) - len(cloudpickle.dumps(env.env))
    assert added < min(10_000, weights_bytes / 100)

    clone = pickle.loads(cloudpickle.dumps(env))
    assert clone.scorer._model is None and clone.frames._renderer is None
    clone.unwrapped.reset_mocap_welds()  # Meta-World's __setstate__ forgets to (its arm would not follow the actions)
    for copy in (env, clone):  # the same state: both reset from the same pickled random state
        copy.reset()
    for action in random_actions(3, seed=5):
        expected, cloned = env.step(action), clone.step(action)
        np.testing.assert_allclose(cloned[0], expected[0], rtol=0, atol=1e-8)
        assert cloned[1] == pytest.approx(expected[1], abs=1e-6)
        assert cloned[4]["vlm_score"] == pytest.approx(expected[4]["vlm_score"], abs=1e-6)
    assert clone.scorer.model is env.scorer.model  # loaded again through the process's cache
    env.close()
    clone.close()


# ------------------------------------------------------------ env checkers


@pytest.mark.parametrize("wrap", [VLMRewardWrapper, FrameToInfo], ids=["VLMRewardWrapper", "FrameToInfo"])
def test_wrapped_envs_pass_the_env_checkers(tiny_checkpoint: Path, wrap: type) -> None:
    from gymnasium.utils.env_checker import check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    kwargs = {"reward_mode": "shaped", "success_bonus": 1.0} if wrap is VLMRewardWrapper else {}
    # SB3's checker takes every Meta-World env for a goal-conditioned env (it has compute_reward), so
    # it checks a MuJoCo pendulum; gymnasium's checker checks Meta-World (human rendering needs a display).
    env = wrap(metaworld(), tiny_checkpoint, **kwargs)  # make_metaworld_env repairs Meta-World's seeding and spaces
    check_env(env, skip_render_check=True)
    pendulum = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=SIZE, height=SIZE)
    if wrap is VLMRewardWrapper:
        kwargs["goal"] = "balance the pole"
    pendulum = wrap(pendulum, tiny_checkpoint, **kwargs)
    check_env(pendulum, skip_render_check=True)
    sb3_check_env(pendulum, warn=True)
    env.close()
    pendulum.close()


# ------------------------------------------------------------ gymnasium ids


def test_registered_ids_make_wrapped_envs_that_pass_the_checker_without_a_warning(tiny_checkpoint: Path) -> None:
    """``gym.make`` on ``vlm_reward_wrappers/<task>`` gives the task in a VLMRewardWrapper (rewards are the
    checkpoint's, the ground truth in ``info``), silently, and gymnasium's own checker passes it."""
    from gymnasium.utils.env_checker import check_env

    env_id = f"vlm_reward_wrappers/{TASK}"
    assert env_id in gym.registry  # registered on import
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, checkpoint=str(tiny_checkpoint), seed=0)
        obs, _ = env.reset(seed=3)
        _, reward, _, _, info = env.step(env.action_space.sample())
    wrapper = env
    while not isinstance(wrapper, VLMRewardWrapper):  # under gymnasium's own wrappers (order enforcing)
        wrapper = wrapper.env
    assert reward == info["vlm_reward"] and "gt_reward" in info
    direct = VLMRewardWrapper(make_metaworld_env(TASK, image_size=SIZE), tiny_checkpoint)
    np.testing.assert_array_equal(direct.reset(seed=3)[0], obs)
    check_env(wrapper, skip_render_check=True)
    env.close()
    direct.close()


def test_registered_ids_make_vector_envs_scored_in_one_pass(tiny_checkpoint: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its sub-envs render frames as the checkpoint was trained on them
        envs = gym.make_vec(f"vlm_reward_wrappers/{TASK}", num_envs=2, checkpoint=str(tiny_checkpoint), seed=0)
    assert isinstance(envs, VectorVLMReward) and envs.num_envs == 2
    envs.reset(seed=0)
    _, rewards, _, _, info = envs.step(envs.action_space.sample())
    assert rewards.shape == (2,) and np.array_equal(rewards, info["vlm_reward"])
    envs.close()


def test_wrapping_a_task_the_checkpoint_never_trained_on_warns(tiny_checkpoint: Path) -> None:
    with pytest.warns(UserWarning, match=r"never trained on door-open-v3 \(it trained on "):
        env = VLMRewardWrapper(make_metaworld_env("door-open-v3", image_size=SIZE), tiny_checkpoint)
    env.close()


# ------------------------------------------------------------ vector envs and autoreset


def _frame_env(checkpoint: str, seed: int, max_episode_steps: int) -> gym.Env:
    return FrameToInfo(metaworld(seed=seed, max_episode_steps=max_episode_steps), checkpoint)


def _wrapped_metaworld(checkpoint: str, seed: int) -> gym.Env:
    return VLMRewardWrapper(metaworld(seed=seed), checkpoint)


LIMITS = (3, 4)  # sub-env 0 ends its first episode after 3 steps, sub-env 1 after 4
STEPS = 6


def run_vector(
    kind: str, checkpoint: str, actions: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[list[int]]]:
    """Shaped rewards, scores and score masks of every step of a vector env of ``kind``, and its passes' batch sizes."""
    fns = [partial(_frame_env, checkpoint, seed, limit) for seed, limit in enumerate(LIMITS)]
    if kind in ("next_step", "same_step"):
        mode = AutoresetMode.NEXT_STEP if kind == "next_step" else AutoresetMode.SAME_STEP
        envs = VectorVLMReward(SyncVectorEnv(fns, autoreset_mode=mode), checkpoint, reward_mode="shaped", gamma=GAMMA)
        scorer = envs.scorer
        envs.reset(seed=0)

        def step(step_actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            _, rewards, _, _, infos = envs.step(step_actions)
            assert np.array_equal(infos["vlm_reward"], rewards)
            return rewards, infos["vlm_score"], infos["_vlm_score"]
    else:
        venv = DummyVecEnv(fns) if kind == "sb3_dummy" else SubprocVecEnv(fns, start_method="fork")
        wrapper = VLMRewardVecEnv(venv, checkpoint, reward_mode="shaped", gamma=GAMMA)
        scorer = wrapper.scorer
        envs = VecCheckNan(wrapper, raise_exception=True)
        envs.seed(0)
        envs.reset()

        def step(step_actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            _, rewards, _, infos = envs.step(step_actions)
            return rewards, np.array([info["vlm_score"] for info in infos]), np.ones(len(infos), dtype=bool)

    results, passes = [], []
    with batch_sizes(scorer.model.backbone.clip.visual) as calls:
        for step_actions in actions:
            calls.clear()
            results.append(step(step_actions))
            passes.append(calls.copy())
    envs.close()
    rewards, step_scores, masks = (np.array(values) for values in zip(*results, strict=True))
    return rewards, step_scores, masks, passes


def check_against_reference(
    model: RewardModel,
    next_step: bool,
    actions: np.ndarray,
    rewards: np.ndarray,
    step_scores: np.ndarray,
    masks: np.ndarray,
) -> None:
    """Every step's shaped reward and score, from frames of reference envs with the same seeds and actions."""
    for index, limit in enumerate(LIMITS):
        second_start = limit + 1 if next_step else limit  # NEXT_STEP: the step after the end only resets
        first, second = reference_episodes(model, index, limit, [actions[:limit, index], actions[second_start:, index]])
        phi_first, phi_second = potentials(model, first), potentials(model, second)
        terminal = limit - 1
        # The terminal step is scored on its own frame, not on the next episode's first frame.
        assert step_scores[terminal, index] == pytest.approx(scores(model, first[-1:])[0], abs=1e-5)
        assert abs(scores(model, first[-1:])[0] - scores(model, second[:1])[0]) > 1e-4
        assert rewards[terminal, index] == pytest.approx(GAMMA * phi_first[-1] - phi_first[-2], abs=1e-4)
        assert abs((GAMMA * phi_second[0] - phi_first[-2]) - rewards[terminal, index]) > 1e-3
        expected = list(GAMMA * phi_first[1:] - phi_first[:-1])
        if next_step:
            expected.append(0.0)  # gymnasium's reset step: no reward, no score
            assert not masks[limit, index] and masks[np.arange(STEPS) != limit, index].all()
        expected += list(GAMMA * phi_second[1:] - phi_second[:-1])  # phi restarts from the reset frame
        np.testing.assert_allclose(rewards[:, index], expected, rtol=0, atol=1e-4)


@pytest.mark.parametrize("kind", ["next_step", "same_step", "sb3_dummy"])
def test_terminal_step_is_scored_on_its_own_frame(tiny_checkpoint: Path, model: RewardModel, kind: str) -> None:
    actions = random_actions(STEPS, num_envs=2, seed=7)
    rewards, step_scores, masks, passes = run_vector(kind, str(tiny_checkpoint), actions)
    assert all(len(step) == 1 and step[0] >= 2 for step in passes), (
        f"one forward pass for all sub-envs per step: {passes}"
    )
    check_against_reference(model, kind == "next_step", actions, rewards, step_scores, masks)


WORKERS_SCRIPT = """
import json, sys
from functools import partial
import gymnasium as gym
sys.path.insert(0, sys.argv[2])
from test_wrappers import STEPS, _wrapped_metaworld, random_actions, run_vector

checkpoint = sys.argv[1]
# the default start method:
envs = gym.vector.AsyncVectorEnv([partial(_wrapped_metaworld, checkpoint, seed) for seed in (0, 1)])
envs.reset(seed=0)
_, async_rewards, _, _, infos = envs.step(random_actions(1, num_envs=2)[0])
envs.close()
assert (async_rewards == infos["vlm_score"]).all(), (async_rewards, infos["vlm_score"])
rewards, scores, masks, passes = run_vector("sb3_subproc", checkpoint, random_actions(STEPS, num_envs=2, seed=7))
result = {"async": async_rewards.tolist(), "rewards": rewards.tolist(), "scores": scores.tolist(), "passes": passes}
print(json.dumps(result))
"""


def test_worker_processes(tiny_checkpoint: Path, model: RewardModel) -> None:
    """In a fresh process: gymnasium's AsyncVectorEnv of wrapped envs, and SB3's SubprocVecEnv under VLMRewardVecEnv."""
    command = [sys.executable, "-c", WORKERS_SCRIPT, str(tiny_checkpoint), str(Path(__file__).parent)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    single = _wrapped_metaworld(str(tiny_checkpoint), 1)
    single.reset(seed=1)
    assert result["async"][1] == pytest.approx(single.step(random_actions(1, num_envs=2)[0][1])[1], abs=1e-6)
    single.close()
    assert all(len(step) == 1 and step[0] >= 2 for step in result["passes"]), result["passes"]
    rewards, step_scores = np.array(result["rewards"]), np.array(result["scores"])
    actions = random_actions(STEPS, num_envs=2, seed=7)
    check_against_reference(model, False, actions, rewards, step_scores, np.ones_like(rewards, dtype=bool))


@pytest.mark.filterwarnings("ignore:.*ERROR:UserWarning")  # gymnasium reports the worker's error as warnings too
def test_forking_after_opening_gl_is_refused_with_a_clear_error(tiny_checkpoint: Path) -> None:
    opened = _wrapped_metaworld(str(tiny_checkpoint), 0)
    opened.reset(seed=0)
    opened.step(random_actions(1)[0])  # this process has now opened a GL context
    envs = gym.vector.AsyncVectorEnv([partial(_wrapped_metaworld, str(tiny_checkpoint), 1)], context="fork")
    envs.reset(seed=0)
    with pytest.raises(RenderingUnavailableError, match="context='spawn'"):
        envs.step(random_actions(1, num_envs=1)[0])
    envs.close(terminate=True)
    opened.close()


def test_vector_wrappers_need_frame_to_info(tiny_checkpoint: Path) -> None:
    plain = [partial(metaworld, 0)]
    with pytest.raises(ValueError, match="FrameToInfo"):
        VectorVLMReward(SyncVectorEnv(plain), tiny_checkpoint)
    with pytest.raises(ValueError, match="FrameToInfo"):
        VLMRewardVecEnv(DummyVecEnv(plain), tiny_checkpoint)


def test_disabled_autoreset_partial_reset_restarts_the_potential(tiny_checkpoint: Path, model: RewardModel) -> None:
    fns = [partial(_frame_env, str(tiny_checkpoint), seed, 50) for seed in (0, 1)]
    envs = VectorVLMReward(
        SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED), tiny_checkpoint, reward_mode="shaped", gamma=GAMMA
    )
    actions = random_actions(2, num_envs=2, seed=3)
    envs.reset(seed=0)
    _, _, _, _, infos = envs.step(actions[0])
    previous = list(infos[FRAME_KEY])
    _, infos = envs.reset(options={"reset_mask": np.array([True, False])})
    assert infos[f"_{FRAME_KEY}"].tolist() == [True, False]
    previous[0] = infos[FRAME_KEY][0]  # sub-env 0 starts again from its reset frame
    _, rewards, terminated, truncated, infos = envs.step(actions[1])
    assert rewards.shape == (2,) and rewards.dtype == np.float64 and not (terminated.any() or truncated.any())
    phi_before, phi_after = potentials(model, previous), potentials(model, list(infos[FRAME_KEY]))
    np.testing.assert_allclose(rewards, GAMMA * phi_after - phi_before, rtol=0, atol=1e-4)
    assert infos["is_success"].dtype == bool and infos["_is_success"].all() and infos["_vlm_score"].all()
    assert not np.allclose(infos["gt_reward"], rewards)
    envs.close()


# ------------------------------------------------------------ stable-baselines3


def test_sb3_trains_on_the_learned_reward_not_metaworlds(tiny_checkpoint: Path) -> None:
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    class Rewards(BaseCallback):
        """Collects the rewards SB3 stores in its rollout and the wrapper's info of each step."""

        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[float, float, float]] = []

        def _on_step(self) -> bool:
            info = self.locals["infos"][0]
            self.seen.append((float(self.locals["rewards"][0]), info["vlm_reward"], info["gt_reward"]))
            return True

    env = VLMRewardWrapper(metaworld(seed=0, max_episode_steps=40), tiny_checkpoint, reward_mode="normalized")
    agent = PPO("MlpPolicy", env, n_steps=64, batch_size=32, n_epochs=1, seed=0, device="cpu")
    callback = Rewards()
    agent.learn(total_timesteps=128, callback=callback)
    rewards, learned, ground_truth = np.array(callback.seen).T
    assert len(rewards) == 128
    np.testing.assert_allclose(rewards, learned, rtol=1e-6)  # what PPO optimises is the learned reward
    assert not np.allclose(rewards, ground_truth)  # and not Meta-World's own
    episode_returns = [episode["r"] for episode in agent.ep_info_buffer]  # Monitor sums the same rewards
    assert episode_returns[0] == pytest.approx(learned[:40].sum(), rel=1e-4)
    env.close()


# ------------------------------------------------------------ examples

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_wrap_env_example(tiny_checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = _load_example("wrap_env")
    reward = example.main(str(tiny_checkpoint), TASK)
    printed = capsys.readouterr().out.split()
    assert float(printed[0]) == pytest.approx(reward) and printed[2] in ("True", "False")
    with pytest.raises(SystemExit, match="no checkpoint at /no/such/checkpoint"):
        example.main("/no/such/checkpoint")


def test_examples_take_hub_repo_ids_and_exit_with_the_packages_message(tmp_path: Path) -> None:
    """The examples leave checkpoints to the package: a missing local folder and a Hub repo id that cannot be had
    (offline, not in the Hub cache) each end the example with the package's one-line message, not a traceback."""
    wrap_env, train_sb3 = _load_example("wrap_env"), _load_example("train_sb3")
    with pytest.raises(SystemExit, match=r"^someone/not-cached is not a checkpoint folder.*Hub repo id") as error:
        wrap_env.main("someone/not-cached")
    assert "\n" not in str(error.value.code)
    for checkpoint, message in (
        (str(tmp_path / "missing"), f"^no checkpoint at {re.escape(str(tmp_path / 'missing'))}: it does not exist"),
        ("someone/not-cached@v1", r"^someone/not-cached@v1 is not a checkpoint folder.*Hub repo id"),
    ):
        with pytest.raises(SystemExit, match=message):
            train_sb3.main(train_sb3.Args(checkpoint=checkpoint, out=str(tmp_path / "out")))
    assert not (tmp_path / "out").exists()  # stopped before anything was made


@pytest.mark.filterwarnings("ignore:rich is experimental")  # SB3's progress bar
@pytest.mark.parametrize("algo, num_envs", [("ppo", 2), ("sac", 1)])
def test_train_sb3_example(tiny_checkpoint: Path, tmp_path: Path, algo: str, num_envs: int) -> None:
    example = _load_example("train_sb3")
    args = example.parse_config(
        example.Args,
        [
            "--checkpoint",
            str(tiny_checkpoint),
            "--algo",
            algo,
            "--num-envs",
            str(num_envs),
            "--total-timesteps",
            "128",
            "--n-steps",
            "32",
            "--batch-size",
            "32",
            "--learning-starts",
            "32",
            "--max-episode-steps",
            "20",
            "--out",
            str(tmp_path),
        ],
    )
    assert example.main(args) == tmp_path / "agent.zip" and (tmp_path / "agent.zip").is_file()
    with open(tmp_path / "monitor.csv") as handle:
        episodes = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    assert len(episodes) >= 5 and {row["l"] for row in episodes} == {"20"} and "is_success" in episodes[0]
    with open(tmp_path / "progress.csv") as handle:
        last = list(csv.DictReader(handle))[-1]
    assert float(last["episode/learned_return"]) == pytest.approx(float(last["rollout/ep_rew_mean"]), rel=1e-4)
    assert np.isfinite(float(last["episode/gt_return"])) and float(last["episode/gt_return"]) != float(
        last["episode/learned_return"]
    )
    assert 0.0 <= float(last["episode/success_rate"]) <= 1.0
