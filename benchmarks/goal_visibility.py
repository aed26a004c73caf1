"""How many pixels of a frame show a task's goal marker: what a frame-only reward can know of where to go.

Meta-World draws the goal of tasks such as reach and push as a small sphere,
the ``goal`` site; a reward model that sees only the frame learns where the goal
is from those pixels alone. For each task this resets the env with seeds
``0 .. --resets - 1``, renders the frame the reward models see, renders it again
with the goal site moved far below the floor, and counts the pixels that differ.
A task whose goal site is transparent prints "no marker drawn". Where a task's
goal is where a scene object ends up (a pressed button, a closed drawer), the
frame shows it whatever its marker's size.

    python benchmarks/goal_visibility.py
    python benchmarks/goal_visibility.py --tasks reach-v3 push-v3 --sizes 64 224
"""

from __future__ import annotations

import argparse
from typing import Any

import mujoco
import numpy as np

from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import DEFAULT_CAMERA, FrameRenderer
from vlm_reward_wrappers.rl import RL_PRESETS

HIDDEN = np.array([0.0, 0.0, -5.0])
"""How far the goal site is moved to hide it: below the floor, out of every camera's view."""


def goal_pixels(task: str, camera: str, size: int, resets: int) -> list[int] | None:
    """Pixels that change when the goal site is hidden, one count per reset; None when the site is not drawn."""
    env = make_metaworld_env(task, camera=camera, image_size=size)
    env.reset(seed=0)
    simulation: Any = env.unwrapped  # Meta-World's MujocoEnv: its model and data
    model, data = simulation.model, simulation.data
    site = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_SITE, "goal")
    if site < 0 or model.site_rgba[site][3] == 0:
        env.close()
        return None
    renderer = FrameRenderer(env, camera=camera, width=size, height=size)
    counts = []
    for seed in range(resets):
        env.reset(seed=seed)
        shown = renderer.render().astype(int)
        position = model.site_pos[site].copy()
        model.site_pos[site] = position + HIDDEN
        mujoco.mj_forward(model, data)
        hidden = renderer.render().astype(int)
        model.site_pos[site] = position
        mujoco.mj_forward(model, data)
        counts.append(int((shown != hidden).any(axis=-1).sum()))
    renderer.close()
    env.close()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=list(RL_PRESETS["quick"].tasks), help="default: RL quick's")
    parser.add_argument("--camera", default=DEFAULT_CAMERA)
    parser.add_argument("--sizes", nargs="+", type=int, default=[64, 224])
    parser.add_argument("--resets", type=int, default=5)
    args = parser.parse_args()
    print(f"| task | frame size | goal pixels per reset ({args.camera} camera) | share of the frame |")
    print("|---|---|---|---|")
    for task in args.tasks:
        for size in args.sizes:
            counts = goal_pixels(task, args.camera, size, args.resets)
            if counts is None:
                print(f"| {task} | {size} px | no marker drawn | — |")
            else:
                print(f"| {task} | {size} px | {' '.join(map(str, counts))} | {np.mean(counts) / size**2:.2%} |")


if __name__ == "__main__":
    main()
