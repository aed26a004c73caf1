"""A learned reward on a Meta-World env, in five lines (the README's example).

python examples/wrap_env.py                                   # the bundled reward model
python examples/wrap_env.py runs/quick/checkpoints/triplet-seed0 door-open-v3
python examples/wrap_env.py someone/triplet-metaworld         # a Hub repo id (user/name[@revision]), downloaded
"""

from __future__ import annotations

import sys

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.models import CheckpointError


def main(checkpoint: str | None = None, task: str = "door-open-v3") -> float:
    try:
        env = VLMRewardWrapper(make_metaworld_env(task), checkpoint)  # a folder, a Hub repo id, None: the bundled one
    except CheckpointError as error:  # "no checkpoint at PATH: ...", or a repo that cannot be had (offline, unknown)
        sys.exit(str(error))

    obs, info = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    print(reward, info["gt_reward"], info["is_success"])  # learned reward, Meta-World's, success flag

    env.close()
    return float(reward)


if __name__ == "__main__":
    main(*sys.argv[1:3])
