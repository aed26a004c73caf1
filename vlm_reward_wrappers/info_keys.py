"""The keys the reward wrappers add to an env's ``info``, named once.

Example:
    >>> from vlm_reward_wrappers import info_keys
    >>> info_keys.GT_REWARD, info_keys.IS_SUCCESS
    ('gt_reward', 'is_success')
"""

GT_REWARD = "gt_reward"
"""The env's own reward (Meta-World's dense reward), kept when the wrapper replaces it."""

VLM_REWARD = "vlm_reward"
"""The reward the wrapper returned (after normalisation, shaping and bonus)."""

VLM_SCORE = "vlm_score"
"""The reward model's raw score of the frame."""

IS_SUCCESS = "is_success"
"""``bool(info["success"])``, the key stable-baselines3's Monitor and callbacks read."""

SUCCESS = "success"
"""Meta-World's own success flag."""

FRAME = "vlm_frame"
"""The rendered frame that ``FrameToInfo`` puts into ``info`` for batched scoring."""
