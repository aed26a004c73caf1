"""The learned reward on the states trained agents visit: the gate's probe, moved onto the agents' own path.

The RL gate checks a reward on expert, noisy and random rollouts. An agent
trained on the reward goes elsewhere. This replays the finished agents of an
RL sweep (``vlm-rewards rl``) on one task, with stochastic actions as in
training, scores every frame with a checkpoint's per-task progress (the bundled
model by default) and prints, per reward source the agents were trained on: the
success AUC of progress (success frames against the others), the share of
frames without success above the median success frame, and the mean progress of
each kind. An AUC far below the gate's means the reward is wrong exactly where
the agent ends up.

It reads only the policy weights of each ``agent.zip`` (``torch.load`` with
``weights_only=True``), never its pickled parts.

    python benchmarks/agent_state_probe.py --sweep runs/rl-quick --task button-press-v3
"""

from __future__ import annotations

import argparse
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import SAC

from vlm_reward_wrappers import VLMRewardWrapper, info_keys, make_metaworld_env
from vlm_reward_wrappers.configs import from_dict
from vlm_reward_wrappers.io_utils import read_json
from vlm_reward_wrappers.metrics.frame import success_auroc
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT
from vlm_reward_wrappers.rl import RLConfig
from vlm_reward_wrappers.rl.config import SWEEP_FILE

FIRST_SEED = 10_000
"""Episode seeds ``FIRST_SEED + 100 * agent seed + episode``: none of them a training or evaluation episode."""


def load_policy(agent: SAC, agent_zip: Path) -> None:
    """Write the policy weights of ``agent_zip`` into ``agent`` (a SAC agent with the run's network)."""
    with zipfile.ZipFile(agent_zip) as archive:
        weights = torch.load(io.BytesIO(archive.read("policy.pth")), map_location="cpu", weights_only=True)
    agent.policy.load_state_dict(weights)


def episode_seed(agent_seed: int, episode: int) -> int:
    """The env seed of one replayed episode of an agent (see :data:`FIRST_SEED`)."""
    return FIRST_SEED + 100 * agent_seed + episode


def stochastic_steps(env: gym.Env, agent: SAC, seed: int) -> Iterator[tuple[np.ndarray, float, dict[str, Any]]]:
    """One episode of ``agent`` from ``env.reset(seed=seed)``, with stochastic actions as in training: each step's
    action, reward and info, yielded after the step (the env shows that step's state)."""
    obs, _ = env.reset(seed=seed)
    done = False
    while not done:
        action, _ = agent.predict(obs, deterministic=False)
        obs, reward, terminated, truncated, info = env.step(action)
        yield action, float(reward), info
        done = terminated or truncated


def visited_progress(agent_zips: list[Path], env: gym.Env, agent: SAC, episodes: int) -> tuple[np.ndarray, np.ndarray]:
    """Progress of every frame the agents visit in ``env``, and whether the task was done at that frame."""
    progress, success = [], []
    for agent_zip in agent_zips:
        seed = int(agent_zip.parent.name.removeprefix("seed"))
        load_policy(agent, agent_zip)
        torch.manual_seed(seed)
        for episode in range(episodes):
            for _, reward, info in stochastic_steps(env, agent, episode_seed(seed, episode)):
                progress.append(reward)
                success.append(bool(info[info_keys.IS_SUCCESS]))
    return np.array(progress), np.array(success)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="runs/rl-quick", help="a vlm-rewards rl output folder")
    parser.add_argument("--task", default="button-press-v3")
    parser.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINT), help="the reward that scores the frames")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per agent")
    args = parser.parse_args()
    config = from_dict(RLConfig, read_json(Path(args.sweep) / SWEEP_FILE)["config"])  # the sweep's network, episodes
    task_env = make_metaworld_env(args.task, max_episode_steps=config.max_episode_steps)
    env = VLMRewardWrapper(task_env, args.checkpoint, reward_mode="progress")
    agent = SAC("MlpPolicy", env, buffer_size=1, policy_kwargs={"net_arch": list(config.net_arch)}, device="cpu")
    print(
        "| agents trained on | agents | frames | success frames | success AUC | frames without success above "
        "the success median | mean progress: success / without |"
    )
    print("|---|---|---|---|---|---|---|")
    for source in sorted(path for path in (Path(args.sweep) / args.task).iterdir() if path.is_dir()):
        agent_zips = sorted(source.glob("seed*/agent.zip"))
        if not agent_zips:
            continue
        progress, success = visited_progress(agent_zips, env, agent, args.episodes)
        if success.any():
            auc = success_auroc(progress, success)
            above = float(np.mean(progress[~success] > np.median(progress[success])))
            summary = f"{auc:.2f} | {above:.2f} | {progress[success].mean():.2f} / {progress[~success].mean():.2f}"
        else:
            summary = f"— | — | — / {progress.mean():.2f}"
        print(f"| {source.name} | {len(agent_zips)} | {len(progress)} | {int(success.sum())} | {summary} |")
    env.close()


if __name__ == "__main__":
    main()
