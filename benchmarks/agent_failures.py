"""Does training the reward on agents' failed episodes make it right on the states agents visit?

``benchmarks/agent_state_probe.py`` found the bundled reward wrong on the
states the quick RL sweep's agents visit, though its gate passed on expert,
noisy and random rollouts. This tries the lever that suggests: the failed
episodes of trained agents as negatives of the bundled model's own row (the
triplet with failure negatives: a success frame of each demonstration must
outscore any frame of an episode of the same task that never succeeds).

1. Replays the sweep's finished agents of every reward source on each task
   (stochastic actions, as in training; policy weights only, never a pickle):
   agent seeds 0-2 for training, 3-4 held out, 4 episodes each.
2. Trains the bundled model's row twice on the bundled preset's training data
   and the shipped backbone: as it was (the control), and with the training
   agents' episodes added (those that never succeed are failures).
3. Prints, per model and task, the success AUC of its score on the held-out
   agents' frames (per source the agents were trained on), on the gate's
   rollouts, and the time-balanced accuracy on the bundled preset's evaluation
   episodes.

    vlm-rewards bundle && vlm-rewards rl --preset quick      # runs/bundled, runs/rl-quick
    python benchmarks/agent_failures.py --sweep runs/rl-quick --bundled runs/bundled
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from agent_state_probe import episode_seed, load_policy, stochastic_steps
from stable_baselines3 import SAC

from vlm_reward_wrappers import info_keys, make_metaworld_env
from vlm_reward_wrappers.configs import from_dict
from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.data.storage import MANIFEST_NAME, EpisodeRecord, episode_path, write_episode
from vlm_reward_wrappers.evaluation.scoring import score_dataset
from vlm_reward_wrappers.io_utils import read_json
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.metrics.frame import success_auroc
from vlm_reward_wrappers.metrics.time_balanced import time_balanced_accuracy
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, BackboneSpec, RewardModel
from vlm_reward_wrappers.models.checkpoint import BACKBONE_NAME, read_checkpoint_config
from vlm_reward_wrappers.rendering import FrameRenderer
from vlm_reward_wrappers.rl import RLConfig
from vlm_reward_wrappers.rl.config import SWEEP_FILE
from vlm_reward_wrappers.tasks import goal_text
from vlm_reward_wrappers.training.trainer import TrainConfig, train

TRAINING_SEEDS, HELD_OUT_SEEDS = (0, 1, 2), (3, 4)
COLLECTION = "agents"
"""The collection name of the agents' episodes (their kind is ``agent``: neither an expert nor a random policy)."""


def record_agents(
    sweep: Path, tasks: list[str], seeds: tuple[int, ...], root: Path, episodes: int, camera: str, size: int
) -> dict[int, str]:
    """Write ``episodes`` rollouts of each agent seed of every source into dataset ``root``, with frames of
    ``camera`` at ``size`` px; returns each episode's source by index."""
    config = from_dict(RLConfig, read_json(sweep / SWEEP_FILE)["config"])
    sources: dict[int, str] = {}
    index = 0
    for task in tasks:
        env = make_metaworld_env(task, max_episode_steps=config.max_episode_steps)
        agent = SAC("MlpPolicy", env, buffer_size=1, policy_kwargs={"net_arch": list(config.net_arch)}, device="cpu")
        with FrameRenderer(env, camera, size, size) as renderer:
            for source in sorted(path.name for path in (sweep / task).iterdir() if path.is_dir()):
                for seed in seeds:
                    load_policy(agent, sweep / task / source / f"seed{seed}" / "agent.zip")
                    torch.manual_seed(seed)
                    for episode in range(episodes):
                        sources[index] = source
                        path = episode_path(root, task, COLLECTION, index)
                        index += 1
                        if not path.exists():  # a killed run resumes
                            record = rollout(env, renderer, agent, task, episode_seed(seed, episode))
                            write_episode(path, record, collection=COLLECTION, index=index - 1)
        env.close()
    return sources


def rollout(env: gym.Env, renderer: FrameRenderer, agent: SAC, task: str, seed: int) -> EpisodeRecord:
    """One stochastic episode of ``agent``, recorded like a collected one."""
    frames, actions, rewards, successes = [], [], [], []
    for action, reward, info in stochastic_steps(env, agent, seed):
        frames.append(renderer.render())
        actions.append(action)
        rewards.append(reward)
        successes.append(bool(info[info_keys.SUCCESS]))
    return EpisodeRecord(
        task=task,
        goal_text=goal_text(task),
        seed=seed,
        camera=renderer.camera,
        image_size=renderer.width,
        noise_std=0.0,
        kind="agent",
        frames=np.stack(frames),
        actions=np.stack(actions).astype(np.float32),
        gt_reward=np.asarray(rewards, dtype=np.float32),
        success=np.asarray(successes, dtype=bool),
    )


def auc_or_none(table: FrameTable) -> float | None:
    return success_auroc(table.predicted, table.success) if table.success.any() and not table.success.all() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", default="runs/rl-quick", help="a finished vlm-rewards rl folder")
    parser.add_argument("--bundled", default="runs/bundled", help="the vlm-rewards bundle benchmark folder")
    parser.add_argument("--out", default=None, help="work folder (default: SWEEP/agent-failures)")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per agent")
    args = parser.parse_args()
    sweep, bundled = Path(args.sweep), Path(args.bundled)
    out = Path(args.out) if args.out else sweep / "agent-failures"
    tasks = sorted(path.name for path in sweep.iterdir() if (path / "sparse").is_dir())
    train_root, held_out_root = out / "train", out / "held-out"
    if not (train_root / MANIFEST_NAME).is_file():  # the bundled training data, hard-linked, plus the agents
        shutil.copytree(bundled / "data" / "train", train_root, copy_function=os.link, dirs_exist_ok=True)
    shipped = read_checkpoint_config(BUNDLED_CHECKPOINT)[0]  # the frames it scores, its row, its backbone
    frames = shipped.camera, shipped.image_size
    record_agents(sweep, tasks, TRAINING_SEEDS, train_root, args.episodes, *frames)
    held_out_root.mkdir(parents=True, exist_ok=True)
    manifest = json.loads((bundled / "data" / "train" / MANIFEST_NAME).read_text())
    (held_out_root / MANIFEST_NAME).write_text(json.dumps({**manifest, "collections": []}))
    held_out_sources = record_agents(sweep, tasks, HELD_OUT_SEEDS, held_out_root, args.episodes, *frames)

    config = from_dict(TrainConfig, shipped.training["config"])
    backbone = BackboneSpec.from_file(shipped.backbone.model, BUNDLED_CHECKPOINT / BACKBONE_NAME)
    models = {}
    for name, data in (("control", bundled / "data" / "train"), ("with agent failures", train_root)):
        folder = out / name.replace(" ", "-")
        train(config, data, folder, backbone=backbone, progress=False)
        models[name] = RewardModel.from_pretrained(folder)

    held_out = DemoDataset(held_out_root)
    source_of = np.array([held_out_sources[info.index] for info in held_out.episodes])
    evaluation = DemoDataset(bundled / "data" / "eval", tasks=tasks)
    print("| model | task | held-out agents trained on | success frames | success AUC | gate AUC | time-balanced |")
    print("|---|---|---|---|---|---|---|")
    for name, model in models.items():
        agents, scored_eval = score_dataset(model, held_out).table, score_dataset(model, evaluation).table
        assert agents is not None and scored_eval is not None
        for task in tasks:
            gate_data = DemoDataset(next((sweep / "gate").glob(f"{task}-*")))
            gate = score_dataset(model, gate_data).table
            own = scored_eval.of_task(task)
            assert gate is not None
            balanced = time_balanced_accuracy(own.predicted, own.ground_truth, own.episode, own.step)
            for source in sorted(set(source_of)):
                part = agents.select((agents.task == task) & (source_of[agents.episode] == source))
                auc = auc_or_none(part)
                print(
                    f"| {name} | {task} | {source} | {int(part.success.sum())} | "
                    f"{'—' if auc is None else f'{auc:.2f}'} | {auc_or_none(gate):.2f} | {balanced:.3f} |"
                )


if __name__ == "__main__":
    main()
