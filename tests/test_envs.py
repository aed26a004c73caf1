"""Seeding of the Meta-World envs ``make_metaworld_env`` makes: ``reset(seed=s)`` fixes the whole episode.

Real Meta-World envs, 32 px frames. Meta-World draws MT1's goal variants from NumPy's global generator, which
every process seeds from fresh entropy, so the key test runs the same script in fresh processes.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import FrameRenderer

SIZE = 32
GOAL = slice(36, 39)
"""Where the goal position lies in a Meta-World v3 observation (the goal is visible in MT1 envs)."""
OBJECT = slice(4, 7)
"""Where the first object's position lies in a Meta-World v3 observation."""

ACTIONS = np.array(
    [[0.5, -0.3, 0.2, 1.0], [-0.4, 0.6, -0.1, -1.0], [0.1, 0.1, 0.8, 0.0], [-1.0, -0.2, 0.3, 0.5]], dtype=np.float32
)

EPISODE_SCRIPT = """
import hashlib, json, sys
import numpy as np
from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import FrameRenderer

ctor_seed = int(sys.argv[1])
actions = np.array(json.loads(sys.argv[2]), dtype=np.float32)
result = {}
for task, seed in (("reach-v3", None), ("push-v3", ctor_seed)):
    env = make_metaworld_env(task, seed=seed, image_size=32)
    renderer = FrameRenderer(env, camera="corner", width=32, height=32)
    obs, _ = env.reset(seed=5)
    observations, frames = [obs.tolist()], hashlib.sha256(renderer.render().tobytes())
    for action in actions:
        obs, *_ = env.step(action)
        observations.append(obs.tolist())
        frames.update(renderer.render().tobytes())
    result[task] = {"observations": observations, "frames": frames.hexdigest()}
    renderer.close()
    env.close()
print(json.dumps(result))
"""


def run_fresh_processes(ctor_seeds: list[int]) -> list[dict]:
    """The episodes ``EPISODE_SCRIPT`` records in one fresh process per constructor seed (run side by side)."""
    environment = {**os.environ, "MUJOCO_GL": "egl"}
    actions = json.dumps(ACTIONS.tolist())
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", EPISODE_SCRIPT, str(seed), actions],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment,
        )
        for seed in ctor_seeds
    ]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err[-2000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def rollout(env, renderer: FrameRenderer, *, seed: int | None) -> tuple[np.ndarray, list[np.ndarray]]:
    """Observations and frames of a reset (with ``seed``) and the fixed actions."""
    obs, _ = env.reset(seed=seed)
    observations, frames = [obs], [renderer.render()]
    for action in ACTIONS:
        obs, *_ = env.step(action)
        observations.append(obs)
        frames.append(renderer.render())
    return np.stack(observations), frames


def test_reset_seed_gives_the_same_episode_in_fresh_processes_whatever_the_constructor_seed():
    """reset(seed=5) in two fresh processes gives one episode: reach-v3 made without a constructor seed in both,
    push-v3 made with constructor seed 1 in one and 2 in the other, and reach-v3 made with seed 7 here."""
    first, second = run_fresh_processes([1, 2])
    for task in ("reach-v3", "push-v3"):
        goal = np.asarray(first[task]["observations"][0])[GOAL]
        assert np.abs(goal).sum() > 0, "the goal must be visible in the observation"
        assert second[task]["observations"] == first[task]["observations"], task
        assert second[task]["frames"] == first[task]["frames"], task
    reference = first["reach-v3"]
    # ... the same as reach-v3 made here with constructor seed 7.
    env = make_metaworld_env("reach-v3", seed=7, image_size=SIZE)
    renderer = FrameRenderer(env, camera="corner", width=SIZE, height=SIZE)
    observations, frames = rollout(env, renderer, seed=5)
    renderer.close()
    env.close()
    np.testing.assert_array_equal(observations, np.asarray(reference["observations"]))
    digest = hashlib.sha256(b"".join(frame.tobytes() for frame in frames)).hexdigest()
    assert digest == reference["frames"]


@pytest.mark.parametrize("task", ["reach-v3", "push-v3"])
def test_different_reset_seeds_give_different_goals_and_objects(task):
    env = make_metaworld_env(task, image_size=SIZE)
    firsts = np.stack([env.reset(seed=seed)[0] for seed in range(6)])
    env.close()
    goals = firsts[:, GOAL]
    objects = firsts[:, OBJECT]
    assert len(np.unique(goals.round(6), axis=0)) == len(goals), goals
    assert len(np.unique(objects.round(6), axis=0)) == len(objects), objects


def test_seeded_then_unseeded_resets_are_reproducible():
    """Two envs (different constructor seeds) given reset(seed=11), then unseeded resets, see the same episodes."""
    envs = [make_metaworld_env("reach-v3", seed=ctor_seed, image_size=SIZE) for ctor_seed in (1, 2)]
    sequences = []
    for env in envs:
        observations = [env.reset(seed=11)[0]]
        for _ in range(3):
            env.step(ACTIONS[0])
            observations.append(env.reset()[0])
        observations.append(env.action_space.sample())  # the action space is seeded from the reset seed too
        sequences.append(observations)
        env.close()
    for first, second in zip(*sequences, strict=True):
        np.testing.assert_array_equal(first, second)
    goals = np.stack([obs[GOAL] for obs in sequences[0][:4]])
    assert len(np.unique(goals.round(6), axis=0)) == 4, "unseeded resets continue the stream, not repeat the goal"


def test_constructor_seed_seeds_the_first_unseeded_reset():
    seeded_at_construction = make_metaworld_env("reach-v3", seed=3, image_size=SIZE)
    seeded_at_reset = make_metaworld_env("reach-v3", image_size=SIZE)
    np.testing.assert_array_equal(seeded_at_construction.reset()[0], seeded_at_reset.reset(seed=3)[0])
    np.testing.assert_array_equal(seeded_at_construction.reset()[0], seeded_at_reset.reset()[0])
    seeded_at_construction.close()
    seeded_at_reset.close()


@pytest.mark.parametrize("task", ["push-v3", "pick-place-v3"])
def test_reset_seed_gives_the_same_episode_whatever_came_before(task):
    """Objects and goal, observations and frames after reset(seed=5) do not depend on earlier episodes."""
    fresh = make_metaworld_env(task, image_size=SIZE)
    used = make_metaworld_env(task, seed=123, image_size=SIZE)
    fresh_renderer = FrameRenderer(fresh, camera="corner", width=SIZE, height=SIZE)
    used_renderer = FrameRenderer(used, camera="corner", width=SIZE, height=SIZE)
    other, _ = rollout(used, used_renderer, seed=9)
    used.reset()
    expected, expected_frames = rollout(fresh, fresh_renderer, seed=5)
    observations, frames = rollout(used, used_renderer, seed=5)
    np.testing.assert_array_equal(observations, expected)
    for frame, expected_frame in zip(frames, expected_frames, strict=True):
        np.testing.assert_array_equal(frame, expected_frame)
    assert not np.allclose(other[0, OBJECT], expected[0, OBJECT]), "another seed places the object elsewhere"
    assert fresh.observation_space.contains(expected[0].astype(np.float32))
    for renderer in (fresh_renderer, used_renderer):
        renderer.close()
    fresh.close()
    used.close()


@pytest.mark.parametrize("task", ["reach-v3", "push-v3"])
def test_reset_frame_shows_this_episodes_goal(task):
    """Meta-World moves the goal marker after its last position pass in reset: the frame must not lag behind."""
    env = make_metaworld_env(task, image_size=SIZE)
    early = FrameRenderer(env, camera="corner", width=SIZE, height=SIZE)  # made before the resets
    site = env.unwrapped.model.site("goal").id
    for seed in (5, 6):
        obs, _ = env.reset(seed=seed)
        np.testing.assert_allclose(env.unwrapped.data.site_xpos[site], obs[GOAL], rtol=0, atol=1e-9)
        frame = early.render()
        late = FrameRenderer(env, camera="corner", width=SIZE, height=SIZE)  # made after the reset
        np.testing.assert_array_equal(frame, late.render())
        late.close()
    early.close()
    env.close()
