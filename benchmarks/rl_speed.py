"""SAC steps/s with a learned reward against Meta-World's own reward, same task and settings, measured in one run.

Three agents with the quick RL preset's SAC settings (one torch thread each)
train on the same task from the same seed:

* ``gt``: Meta-World's dense reward (no frames rendered);
* ``learned, in turn``: the learned reward computed in the agent's process
  (render, score, then the gradient step);
* ``learned, reward worker``: the env and its renderer in a second process, the
  frame rendered while the agent takes its gradient step and scored a step late
  (``PipelinedRewardVecEnv``, what ``vlm-rewards rl`` uses where a core is free).

Each is timed over ``--steps`` env steps after its ``learning_starts`` random
steps (so every timed step includes a gradient step); each figure is the
best of ``--repeats`` timed blocks. The last line is

    rl speed ratio: <x>      learned (reward worker) steps/s / gt steps/s

    python benchmarks/rl_speed.py          # the bundled reward model; --checkpoint for another
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time

import torch

from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, is_checkpoint
from vlm_reward_wrappers.rl import RL_PRESETS, RLConfig, RunSpec, parse_source
from vlm_reward_wrappers.rl.pipelined import PipelinedRewardVecEnv
from vlm_reward_wrappers.rl.run import make_train_venv, new_agent


def steps_per_second(spec: RunSpec, config: RLConfig, steps: int, repeats: int) -> float:
    """Best steps/s of ``repeats`` blocks of ``steps`` SAC steps, after the random steps before learning."""
    venv = make_train_venv(spec, config)
    agent = new_agent(spec, config, venv)
    agent.learn(config.learning_starts + steps)  # random steps, then a warm-up block of learning
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        agent.learn(steps, reset_num_timesteps=False)
        if isinstance(venv, PipelinedRewardVecEnv):
            venv.flush()
        best = max(best, steps / (time.perf_counter() - started))
    venv.close()
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default=str(BUNDLED_CHECKPOINT), help="default: the bundled reward model")
    parser.add_argument("--task", default="drawer-close-v3")
    parser.add_argument("--steps", type=int, default=1000, help="env steps per timed block")
    parser.add_argument("--repeats", type=int, default=2, help="timed blocks per agent (the best counts)")
    args = parser.parse_args()
    if not is_checkpoint(args.checkpoint):
        raise SystemExit(f"no checkpoint at {args.checkpoint}: pass a checkpoint folder (default: the bundled model)")
    torch.set_num_threads(1)
    base = RL_PRESETS["quick"]
    needed = base.learning_starts + (args.repeats + 1) * args.steps  # the replay buffer holds them all
    config = dataclasses.replace(base, total_steps=-(-needed // base.eval_freq) * base.eval_freq)
    learned = parse_source(args.checkpoint)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(f"task {args.task}, SAC {base.net_arch} batch {base.batch_size}, one torch thread per process")
    rates = {}
    for name, source, worker in (
        ("gt", parse_source("gt"), "off"),
        ("learned, in turn", learned, "off"),
        ("learned, reward worker", learned, "on"),
    ):
        spec, settings = RunSpec(args.task, source, seed=0), dataclasses.replace(config, reward_worker=worker)
        rates[name] = steps_per_second(spec, settings, args.steps, args.repeats)
        print(f"{name:24s} {rates[name]:6.1f} SAC steps/s")
    print(f"in-turn ratio: {rates['learned, in turn'] / rates['gt']:.2f}")
    print(f"rl speed ratio: {rates['learned, reward worker'] / rates['gt']:.2f}")


if __name__ == "__main__":
    main()
