"""Demonstration data: collection with scripted experts, and the on-disk dataset."""

from vlm_reward_wrappers.data.collect import collect
from vlm_reward_wrappers.data.config import CollectionConfig, EpisodeJob
from vlm_reward_wrappers.data.recorder import run_episode
from vlm_reward_wrappers.data.storage import DemoDataset, EpisodeInfo, EpisodeRecord, FrameBatch

__all__ = [
    "CollectionConfig",
    "DemoDataset",
    "EpisodeInfo",
    "EpisodeJob",
    "EpisodeRecord",
    "FrameBatch",
    "collect",
    "run_episode",
]
