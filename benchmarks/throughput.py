"""Steps/s of the reward wrappers, and what their parts alone allow.

Measured in one run, on CPU, with the camera and frame size of the checkpoint:
env step, FrameRenderer frame, model score at batch 1 and 8, the same three
calls in turn without a wrapper, the wrapped env (``VLMRewardWrapper``), and 8
envs scored in one batch (``SyncVectorEnv`` + ``VectorVLMReward``) against 8
separately wrapped envs stepped in a loop. Each figure is the fastest of
``--repeats`` timed runs after a warm-up (the machine may be shared). The last
two lines are

    wrapper overhead ratio: <x>       wrapped steps/s * (t_step + t_render + t_score1)
    vector batching speedup: <x>x     8 envs, one batched pass / 8 wrapped envs

    python benchmarks/throughput.py --checkpoint runs/quick/checkpoints/triplet-seed0
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.models import BackboneSpec, FinetuneConfig, RewardModel, RewardModelConfig, is_checkpoint
from vlm_reward_wrappers.rendering import FrameRenderer
from vlm_reward_wrappers.tasks import goal_text
from vlm_reward_wrappers.wrappers import FrameToInfo, VectorVLMReward, VLMRewardWrapper, load_reward_model


def seconds_per_call(call: Callable[[], object], calls: int, repeats: int) -> float:
    """Fastest mean time of ``calls`` calls over ``repeats`` runs, after one warm-up run."""
    best = float("inf")
    for run in range(repeats + 1):
        started = time.perf_counter()
        for _ in range(calls):
            call()
        if run:  # the first run warms up
            best = min(best, (time.perf_counter() - started) / calls)
    return best


def stepper(env: gym.Env, rng: np.random.Generator) -> Callable[[], None]:
    """One random step, resetting at episode ends."""

    def step() -> None:
        *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=4).astype(np.float32))
        if terminated or truncated:
            env.reset()

    return step


def untrained_checkpoint(folder: str) -> str:
    config = RewardModelConfig(
        backbone=BackboneSpec("vlmrw-tiny"),
        finetune=FinetuneConfig(mode="frozen"),
        objective={"name": "triplet"},
        image_size=64,
    )
    return str(RewardModel(config).save_pretrained(Path(folder) / "untrained"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="runs/quick/checkpoints/triplet-seed0")
    parser.add_argument("--task", default="reach-v3")
    parser.add_argument("--steps", type=int, default=200, help="timed calls per run")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per figure (the fastest counts)")
    parser.add_argument("--envs", type=int, default=8)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = args.checkpoint
        if not is_checkpoint(checkpoint):
            checkpoint = untrained_checkpoint(scratch)
            print(
                f"no checkpoint at {args.checkpoint}: timing an untrained vlmrw-tiny model (frozen, 64 px); "
                "speed does not depend on the weights"
            )
        model = load_reward_model(checkpoint)
        camera, size, goal = model.config.camera, model.config.image_size, goal_text(args.task)
        make_env = partial(make_metaworld_env, args.task, image_size=size)
        rng = np.random.default_rng(0)

        def score(batch: np.ndarray) -> None:
            with torch.no_grad():
                model.reward_from_features(model.encode_images(batch), goal)

        env = make_env(seed=0)
        env.reset(seed=0)
        step = stepper(env, rng)
        t_step = seconds_per_call(step, args.steps, args.repeats)
        renderer = FrameRenderer(env, camera, size, size)
        t_render = seconds_per_call(renderer.render, args.steps, args.repeats)
        frames = np.stack([renderer.render()] * args.envs)
        t_score1 = seconds_per_call(partial(score, frames[:1]), args.steps, args.repeats)
        t_score8 = seconds_per_call(partial(score, frames), args.steps, args.repeats)
        # The same three calls in turn, without the wrapper: what alternating GL and torch costs.
        t_inline = seconds_per_call(lambda: (step(), score(renderer.render()[None])), args.steps, args.repeats)
        renderer.close()
        env.close()

        wrapped = VLMRewardWrapper(make_env(seed=0), checkpoint)
        wrapped.reset(seed=0)
        t_wrapped = seconds_per_call(stepper(wrapped, rng), args.steps, args.repeats)
        wrapped.close()

        separate = [VLMRewardWrapper(make_env(seed=index), checkpoint) for index in range(args.envs)]
        steps = [stepper(single, rng) for single in separate]
        for single in separate:
            single.reset()
        t_separate = seconds_per_call(lambda: [step() for step in steps], args.steps, args.repeats)
        for single in separate:
            single.close()

        vector = VectorVLMReward(
            gym.vector.SyncVectorEnv(
                [partial(FrameToInfo, make_env(seed=index), checkpoint) for index in range(args.envs)]
            ),
            checkpoint,
        )
        vector.reset(seed=0)
        actions = rng.uniform(-1, 1, size=(args.envs, 4)).astype(np.float32)
        t_vector = seconds_per_call(lambda: vector.step(actions), args.steps, args.repeats)
        vector.close()

    n = args.envs
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cpus, torch {torch.__version__} "
        f"with {torch.get_num_threads()} threads; task {args.task}, camera {camera}, {size}x{size} px, "
        f"backbone {model.config.backbone.model}"
    )
    print(f"env.step:                          {1 / t_step:9.1f} steps/s")
    print(f"FrameRenderer.render:              {1 / t_render:9.1f} frames/s")
    print(f"model score, batch 1:              {1 / t_score1:9.1f} frames/s")
    print(f"model score, batch {n}:              {n / t_score8:9.1f} frames/s")
    print(f"parts alone, 1/(step+render+score): {1 / (t_step + t_render + t_score1):8.1f} steps/s")
    print(f"the same calls in turn, no wrapper: {1 / t_inline:8.1f} steps/s")
    print(
        f"VLMRewardWrapper:                  {1 / t_wrapped:9.1f} steps/s  "
        f"({t_inline / t_wrapped:.2f} of the calls in turn)"
    )
    print(f"{n} wrapped envs in a loop:          {n / t_separate:9.1f} steps/s")
    print(f"{n} envs, VectorVLMReward:           {n / t_vector:9.1f} steps/s")
    print(f"wrapper overhead ratio: {(t_step + t_render + t_score1) / t_wrapped:.2f}")
    print(f"vector batching speedup: {t_separate / t_vector:.2f}x")


if __name__ == "__main__":
    main()
