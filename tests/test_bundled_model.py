"""The first minute: the reward model that ships with the package, and the README's first example that uses it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT
from vlm_reward_wrappers.models.hub import RELEASE_FILES
from vlm_reward_wrappers.study.bundle import BUNDLED_ROW
from vlm_reward_wrappers.tasks import ML45_TRAIN

REPO = Path(__file__).resolve().parents[1]


def _first_python_example() -> str:
    readme = (REPO / "README.md").read_text()
    found = re.search(r"```python\n(.*?)```", readme, flags=re.DOTALL)
    assert found, "the README has no Python example"
    return found.group(1)


def test_the_readme_s_first_example_runs_offline_in_an_empty_folder_without_a_warning(tmp_path: Path) -> None:
    example = _first_python_example()
    assert "VLMRewardWrapper(" in example
    environment = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("VLM_REWARDS", "MUJOCO_GL"))},
        "HF_HUB_OFFLINE": "1",  # nothing is downloaded
        "VLM_REWARDS_CACHE": str(tmp_path / "empty-cache"),  # nothing earlier runs cached is used
    }
    done = subprocess.run(
        [sys.executable, "-c", example], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stderr == ""  # no warning, from the package, gymnasium or Meta-World
    reward, ground_truth, success = done.stdout.split()
    assert np.isfinite(float(reward)) and np.isfinite(float(ground_truth)) and success in ("True", "False")
    assert set(os.listdir(tmp_path)) <= {"empty-cache"}  # it writes nothing into the user's folder


def test_the_bundled_model_is_a_small_release_of_the_declared_row_with_its_card() -> None:
    files = {item.name: item.stat().st_size for item in BUNDLED_CHECKPOINT.iterdir()}
    assert set(files) == RELEASE_FILES  # config, weights, backbone, card: no pickle, no training state
    assert sum(files.values()) < 40e6
    config = json.loads((BUNDLED_CHECKPOINT / "config.json").read_text())
    assert config["training"]["tasks"] == list(ML45_TRAIN)
    assert config["objective"]["name"] == "triplet" and config["objective"]["failure_negatives"] is True
    assert config["backbone"]["pretrained"] == "backbone.safetensors"  # its own weights, inside the folder
    card = (BUNDLED_CHECKPOINT / "README.md").read_text()
    assert f"`{BUNDLED_ROW}`" in card and "## Results" in card and "| ref: clock, step / first success |" in card


def test_gym_make_without_a_checkpoint_uses_the_bundled_model() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("vlm_reward_wrappers/door-open-v3", seed=0)
        env.reset(seed=1)
        action = env.action_space.sample()
        reward = env.step(action)[1]
    direct = VLMRewardWrapper(make_metaworld_env("door-open-v3"), BUNDLED_CHECKPOINT)
    direct.reset(seed=1)
    assert direct.step(action)[1] == reward
    env.close()
    direct.close()
