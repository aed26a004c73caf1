"""Shared fixtures: a tiny real Meta-World dataset, collected once per test session."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

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


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: DemoDataset):
    """A ``vlmrw-nano`` backbone pretrained for a few steps on the tiny dataset, saved as a weights file."""
    from vlm_reward_wrappers.training.pretrain import PretrainConfig, pretrain_backbone

    config = PretrainConfig(model="vlmrw-nano", max_steps=4, batch_size=16)
    return pretrain_backbone(tiny_dataset.root, tmp_path_factory.mktemp("backbone"), config=config, progress=False)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_dataset: DemoDataset, tiny_backbone):
    """A triplet/LoRA reward-model checkpoint folder made by the package (a few steps)."""
    from vlm_reward_wrappers.training.trainer import TrainConfig, train

    out = tmp_path_factory.mktemp("checkpoints") / "triplet"
    config = TrainConfig(objective="triplet", finetune="lora", lora_rank=2, batch_size=8, max_steps=4, eval_every=2)
    train(config, tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    return out


def _sigkill_when_written(
    command: Sequence[str], written: Path, log: Path, *, cwd: Path | None = None, timeout: float = 120
) -> None:
    """Run ``command`` in a process group of its own and SIGKILL the group as soon as ``written`` exists.

    Fails when the process ends before that, or nothing is written within ``timeout`` seconds; the
    process's output (in ``log``) is in the message.
    """
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            deadline = time.monotonic() + timeout
            while not written.exists():
                assert process.poll() is None, f"it ended before writing {written.name}: {log.read_text()[-3000:]}"
                assert time.monotonic() < deadline, f"no {written.name} within {timeout} s"
                time.sleep(0.005)
            assert process.poll() is None, "it finished before it could be killed"
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
    assert process.returncode == -signal.SIGKILL


@pytest.fixture(scope="session")
def sigkill_when_written() -> Callable[..., None]:
    """Kill a command with SIGKILL once it has written a file (the resume tests' interruption)."""
    return _sigkill_when_written
