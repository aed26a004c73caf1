"""Frames/s of env.render(), of the package's FrameRenderer, and of collection.

All three are measured in one run, on the same env, camera and size. The last
line is ``render speedup: <x>x`` (FrameRenderer over env.render()).

    python benchmarks/render_speed.py                # 224 px, corner camera
    python benchmarks/render_speed.py --size 64 --frames 300
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import numpy as np

from vlm_reward_wrappers.data import CollectionConfig, collect
from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import FrameRenderer


def frames_per_second(render, frames: int, step) -> float:
    """Rate of ``render`` calls alone; the env steps between frames, untimed."""
    render()  # the first frame builds GL state: not timed
    spent = 0.0
    for _ in range(frames):
        step()
        started = time.perf_counter()
        render()
        spent += time.perf_counter() - started
    return frames / spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", default="door-open-v3")
    parser.add_argument("--camera", default="corner")
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--frames", type=int, default=150)
    parser.add_argument("--episodes", type=int, default=4, help="episodes per worker for the collection rate")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    env = make_metaworld_env(args.task, seed=0, camera=args.camera, image_size=args.size)
    env.reset(seed=0)
    rng = np.random.default_rng(0)

    def step() -> None:
        *_, terminated, truncated, _ = env.step(rng.uniform(-1, 1, size=4).astype(np.float32))
        if terminated or truncated:
            env.reset()

    baseline = frames_per_second(env.render, args.frames, step)
    renderer = FrameRenderer(env, args.camera, args.size, args.size)
    fast = frames_per_second(renderer.render, args.frames, step)
    started = time.perf_counter()
    for _ in range(args.frames * 4):
        step()
    step_only = args.frames * 4 / (time.perf_counter() - started)
    renderer.close()
    env.close()

    config = CollectionConfig(
        tasks=(args.task,),
        episodes_per_task=args.episodes * args.workers,
        image_size=args.size,
        camera=args.camera,
        noise_levels=(0.1,),
        max_steps=150,
        steps_after_success=None,
    )
    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        dataset = collect(config, folder, workers=args.workers, progress=False)
        collection_rate = dataset.num_frames / (time.perf_counter() - started)

    print(
        f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cpus; "
        f"task {args.task}, camera {args.camera}, {args.size}x{args.size}"
    )
    print(f"env.step only:            {step_only:8.1f} steps/s")
    print(f"env.render():             {baseline:8.1f} frames/s")
    print(f"FrameRenderer.render():   {fast:8.1f} frames/s")
    print(f"collection ({args.workers} workers, incl. start-up and writing): {collection_rate:8.1f} frames/s")
    print(f"render speedup: {fast / baseline:.1f}x")


if __name__ == "__main__":
    main()
