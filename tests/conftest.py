"""Shared fixtures: a tiny real Meta-World dataset, collected once per test session."""

from __future__ import annotations

import os

# Tests never reach a model hub: fail fast instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest

from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect

TINY_TASKS = ("reach-v3", "button-press-v3", "drawer-close-v3")


@pytest.fixture(scope="session")
def tiny_config() -> CollectionConfig:
    """Three tasks, four short episodes each (two experts, one noisy expert, one random), 32 px."""
    return CollectionConfig(
        tasks=TINY_TASKS,
        episodes_per_task=4,
        noise_levels=(0.0, 0.0, 0.5),
        random_share=0.25,
        image_size=32,
        max_steps=120,
        steps_after_success=5,
        seed=0,
    )


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory, tiny_config: CollectionConfig) -> DemoDataset:
    return collect(tiny_config, tmp_path_factory.mktemp("tiny") / "data", workers=1, progress=False)
