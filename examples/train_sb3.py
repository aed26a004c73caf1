"""Train an SB3 agent (SAC or PPO) on a learned reward; log learned and ground-truth returns.

One file, CleanRL style: the arguments are the fields of :class:`Args`, each a
command-line flag (derived by ``vlm_reward_wrappers.config_cli``, as for
``vlm-rewards``). With ``--num-envs 1`` the env is wrapped in ``VLMRewardWrapper``;
with more, every step of all sub-envs is scored in one forward pass by ``VLMRewardVecEnv``.
Logs (stdout and ``OUT/progress.csv``):
``episode/learned_return``, ``episode/gt_return`` (Meta-World's reward) and
``episode/success_rate`` (success at any step), means over the last 20
episodes; ``OUT/monitor.csv`` has every episode. The agent is saved to ``OUT/agent.zip``.

    python examples/train_sb3.py --task reach-v3 --algo sac --total-timesteps 20000    # the bundled reward model
    python examples/train_sb3.py --checkpoint runs/quick/checkpoints/triplet-seed0
    python examples/train_sb3.py --algo ppo --num-envs 8 --reward-mode shaped --reward-scale 1 --success-bonus 0
    python examples/train_sb3.py --checkpoint someone/triplet-metaworld    # a Hub repo id
"""

from __future__ import annotations

import sys
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import gymnasium as gym
import numpy as np
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecMonitor

from vlm_reward_wrappers import FrameToInfo, VLMRewardVecEnv, VLMRewardWrapper, info_keys, make_metaworld_env
from vlm_reward_wrappers.config_cli import parse_config
from vlm_reward_wrappers.models import CheckpointError
from vlm_reward_wrappers.wrappers import RewardMode, RewardSpec, load_reward_model


@dataclass
class Args:
    """Train an SB3 agent on a learned reward.

    Args:
        checkpoint: reward-model checkpoint folder, or a Hub repo id (user/name, user/name@revision); none: the
            reward model bundled with the package.
        task: Meta-World task (its goal sentence is the reward's goal).
        algo: SB3 algorithm.
        total_timesteps: env steps, all envs together.
        num_envs: parallel envs; more than 1 scores them in one batch.
        vec_env: dummy: envs in this process; subproc: one process each.
        reward_mode: how scores become rewards (raw, normalized, progress, shaped).
        reward_scale: multiplies the learned reward.
        success_bonus: added on steps where Meta-World reports success (the defaults, progress times 5 plus 10 on
            success, are ``vlm-rewards rl``'s ``CKPT+sparse`` source: success + 0.5 * progress on Meta-World's 0-10
            scale).
        gamma: discount of the agent and of the shaped reward.
        max_episode_steps: episode length (Meta-World's own: 500).
        n_steps: PPO: steps per env per rollout.
        batch_size: minibatch size.
        learning_starts: SAC: random steps before learning.
        seed: seeds envs and agent.
        device: reward model and agent device.
        out: folder for logs and the agent.
    """

    checkpoint: str | None = None
    task: str = "reach-v3"
    algo: Literal["sac", "ppo"] = "sac"
    total_timesteps: int = 20_000
    num_envs: int = 1
    vec_env: Literal["dummy", "subproc"] = "dummy"
    reward_mode: RewardMode = "progress"
    reward_scale: float = 5.0
    success_bonus: float = 10.0
    gamma: float = 0.99
    max_episode_steps: int = 200
    n_steps: int = 512
    batch_size: int = 64
    learning_starts: int = 1000
    seed: int = 0
    device: str = "cpu"
    out: str = "runs/sb3"


class EpisodeStats(BaseCallback):
    """Logs mean learned return, ground-truth return and success rate over the last ``window`` episodes."""

    def __init__(self, window: int = 20) -> None:
        super().__init__()
        self.episodes: deque[tuple[float, float, bool]] = deque(maxlen=window)

    def _on_training_start(self) -> None:
        num_envs = self.training_env.num_envs
        self.learned, self.gt, self.success = np.zeros(num_envs), np.zeros(num_envs), np.zeros(num_envs, dtype=bool)

    def _on_step(self) -> bool:
        for index, (info, done) in enumerate(zip(self.locals["infos"], self.locals["dones"], strict=True)):
            self.learned[index] += info[info_keys.VLM_REWARD]
            self.gt[index] += info[info_keys.GT_REWARD]
            self.success[index] |= info.get(info_keys.IS_SUCCESS, False)
            if done:
                self.episodes.append((self.learned[index], self.gt[index], bool(self.success[index])))
                self.learned[index], self.gt[index], self.success[index] = 0.0, 0.0, False
        if self.episodes:
            learned, gt, success = np.array(self.episodes, dtype=np.float64).T
            self.logger.record("episode/learned_return", float(learned.mean()))
            self.logger.record("episode/gt_return", float(gt.mean()))
            self.logger.record("episode/success_rate", float(success.mean()))
        return True


def reward_spec(args: Args) -> RewardSpec:
    """The learned reward the agent gets, the same for one wrapped env or a batch of them."""
    return RewardSpec.of(
        args.checkpoint,
        reward_mode=args.reward_mode,
        gamma=args.gamma,
        reward_scale=args.reward_scale,
        success_bonus=args.success_bonus,
        device=args.device,
    )


def make_env(args: Args, rank: int) -> Callable[[], gym.Env]:
    """A function making sub-env ``rank``: wrapped for its own reward, or for batched scoring."""

    def thunk() -> gym.Env:
        env = make_metaworld_env(args.task, seed=args.seed + rank, max_episode_steps=args.max_episode_steps)
        return VLMRewardWrapper(env, reward_spec(args)) if args.num_envs == 1 else FrameToInfo(env, args.checkpoint)

    return thunk


def make_vec_env(args: Args, out: Path) -> VecEnv:
    env_fns = [make_env(args, rank) for rank in range(args.num_envs)]
    venv: VecEnv = SubprocVecEnv(env_fns) if args.vec_env == "subproc" and args.num_envs > 1 else DummyVecEnv(env_fns)
    if args.num_envs > 1:
        venv = VLMRewardVecEnv(venv, reward_spec(args))
    return VecMonitor(venv, filename=str(out / "monitor.csv"), info_keywords=(info_keys.IS_SUCCESS,))


def make_agent(args: Args, venv: VecEnv) -> BaseAlgorithm:
    common: dict[str, Any] = dict(
        gamma=args.gamma, batch_size=args.batch_size, seed=args.seed, device=args.device, verbose=1
    )
    if args.algo == "ppo":
        return PPO("MlpPolicy", venv, n_steps=args.n_steps, **common)
    return SAC("MlpPolicy", venv, learning_starts=args.learning_starts, **common)


def main(args: Args) -> Path:
    """Train, log to ``args.out`` and return the path of the saved agent."""
    try:  # loaded once here (the envs of this process reuse it): a bad checkpoint stops before any env is made
        load_reward_model(reward_spec(args).checkpoint, args.device)
    except CheckpointError as error:  # "no checkpoint at PATH: ...", or a Hub repo that cannot be had (offline)
        sys.exit(str(error))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    venv = make_vec_env(args, out)
    agent = make_agent(args, venv)
    agent.set_logger(configure(str(out), ["stdout", "csv"]))
    agent.learn(total_timesteps=args.total_timesteps, callback=EpisodeStats(), progress_bar=True)
    path = out / "agent.zip"
    agent.save(path)
    venv.close()
    print(f"saved the agent to {path}")
    return path


if __name__ == "__main__":
    main(parse_config(Args))
