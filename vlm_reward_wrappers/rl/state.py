"""A run's resumable SAC state in safetensors, JSON and a NumPy archive: reading it never unpickles.

SB3's own ``save`` and ``save_replay_buffer`` write pickles, which run code when loaded; a run folder may
come from someone else, so the state is written here as plain data instead:

* ``agent.safetensors``: the policy's weights (actor, critics, target critics), the entropy coefficient's
  log, every optimizer's tensors, the torch and NumPy RNG states;
* ``state.json``: the optimizers' settings, SAC's counters, the Python and action-space RNG states, the
  run's progress (steps, wall time, evaluation curve);
* ``replay_buffer.npz``: the buffer's arrays, read with ``allow_pickle=False``.

A resumed agent is a fresh one with the run's settings (:func:`~vlm_reward_wrappers.rl.run.new_agent`) into which
:func:`load_state` writes these; it then trains exactly as the uninterrupted agent would.

Example:
    >>> split_optimizer_state({"state": {0: {"step": torch.tensor(3.0)}}, "param_groups": [{"lr": 0.1}]})
    ({'0.step': tensor(3.)}, {'state': {'0': ['step']}, 'param_groups': [{'lr': 0.1}]})
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from stable_baselines3 import SAC

from vlm_reward_wrappers.io_utils import CorruptFileError

STATE_FORMAT = 1
"""Version of the state files; a state of another version is refused, never guessed at."""
AGENT_FILE, STATE_FILE, BUFFER_FILE = "agent.safetensors", "state.json", "replay_buffer.npz"
BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")
"""The replay buffer's arrays (a buffer that stores next observations apart, as SAC's does)."""
COUNTERS = ("num_timesteps", "_n_updates", "_episode_num")
"""SAC's counters a resumed agent continues from."""


@dataclass
class Progress:
    """What a run has done, saved with its agent: env steps, wall time, the evaluation curve."""

    steps: int = 0
    wall_s: float = 0.0
    curve: list[dict[str, float]] = field(default_factory=list)


def _optimizers(agent: SAC) -> dict[str, torch.optim.Optimizer]:
    """SAC's optimizers by name (the entropy coefficient's only when it is learned)."""
    optimizers = {"actor": agent.actor.optimizer, "critic": agent.critic.optimizer}
    if agent.ent_coef_optimizer is not None:
        optimizers["ent_coef"] = agent.ent_coef_optimizer
    return optimizers


def split_optimizer_state(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer's ``state_dict()`` as tensors (``"<index>.<name>"``) and the JSON rest (the names of
    each parameter's tensors, its other values, and the parameter groups)."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, Any] = {"state": {}, "param_groups": state["param_groups"]}
    for index, values in state["state"].items():
        names = []
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
                names.append(name)
            else:
                rest.setdefault("scalars", {}).setdefault(str(index), {})[name] = value
        rest["state"][str(index)] = names
    return tensors, rest


def join_optimizer_state(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`split_optimizer_state`."""
    state: dict[int, dict[str, Any]] = {}
    for index, names in rest["state"].items():
        state[int(index)] = {name: tensors[f"{index}.{name}"] for name in names}
        state[int(index)].update(rest.get("scalars", {}).get(index, {}))
    return {"state": state, "param_groups": rest["param_groups"]}


def save_state(folder: Path, agent: SAC, progress: Progress) -> None:
    """Write the agent, its optimizers and buffer, the RNG states and ``progress`` into ``folder`` (plain data)."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"policy.{name}": value.detach().cpu().contiguous() for name, value in agent.policy.state_dict().items()}
    if agent.log_ent_coef is not None:
        tensors["log_ent_coef"] = agent.log_ent_coef.detach().cpu().contiguous()
    optimizers = {}
    for name, optimizer in _optimizers(agent).items():
        optimizer_tensors, optimizers[name] = split_optimizer_state(optimizer.state_dict())
        tensors.update({f"optimizer.{name}.{key}": value for key, value in optimizer_tensors.items()})
    numpy_name, numpy_keys, *numpy_rest = cast(tuple[Any, ...], np.random.get_state())
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.numpy"] = torch.from_numpy(np.asarray(numpy_keys, dtype=np.int64))
    save_file(tensors, str(folder / AGENT_FILE))
    python_version, python_state, python_gauss = random.getstate()
    document = {
        "format": STATE_FORMAT,
        "progress": {"steps": progress.steps, "wall_s": progress.wall_s, "curve": progress.curve},
        "counters": {name: int(getattr(agent, name)) for name in COUNTERS},
        "optimizers": optimizers,
        "rng": {
            "numpy": [numpy_name, *numpy_rest],
            "python": [python_version, list(python_state), python_gauss],
            "action_space": agent.action_space.np_random.bit_generator.state,
        },
    }
    (folder / STATE_FILE).write_text(json.dumps(document))
    buffer = agent.replay_buffer
    assert buffer is not None  # SAC always has one
    if getattr(buffer, "pending", None):  # a DeferredRewardBuffer whose newest rewards are still on their way
        raise RuntimeError("save the state after PipelinedRewardVecEnv.flush(): rewards are still pending")
    with open(folder / BUFFER_FILE, "wb") as handle:
        np.savez(
            handle,
            pos=np.array(buffer.pos),
            full=np.array(buffer.full),
            **{name: getattr(buffer, name) for name in BUFFER_ARRAYS},
        )
    for written in folder.iterdir():
        with open(written, "rb") as handle:
            os.fsync(handle.fileno())


def read_progress(folder: Path) -> Progress:
    """The progress stored with a saved state (what a resumed run needs before it builds its env)."""
    progress = _read_document(folder / STATE_FILE)["progress"]
    return Progress(int(progress["steps"]), float(progress["wall_s"]), list(progress["curve"]))


def load_state(folder: Path, agent: SAC) -> None:
    """Write a state saved by :func:`save_state` into ``agent`` (a fresh one with the run's settings); its progress
    is :func:`read_progress`'s. Raises :class:`CorruptFileError` naming the file that does not fit."""
    document = _read_document(folder / STATE_FILE)
    try:
        tensors = load_file(str(folder / AGENT_FILE))
    except Exception as error:
        raise CorruptFileError(f"{folder / AGENT_FILE} is not a saved agent ({error})") from error
    try:
        policy = {key.removeprefix("policy."): value for key, value in tensors.items() if key.startswith("policy.")}
        agent.policy.load_state_dict(policy)
        if agent.log_ent_coef is not None:
            with torch.no_grad():
                agent.log_ent_coef.copy_(tensors["log_ent_coef"])
        for name, optimizer in _optimizers(agent).items():
            prefix = f"optimizer.{name}."
            own = {key.removeprefix(prefix): value for key, value in tensors.items() if key.startswith(prefix)}
            optimizer.load_state_dict(join_optimizer_state(own, document["optimizers"][name]))
        for name, value in document["counters"].items():
            setattr(agent, name, int(value))
        rng = document["rng"]
        torch.set_rng_state(tensors["rng.torch"])
        numpy_name, *numpy_rest = rng["numpy"]
        np.random.set_state((numpy_name, tensors["rng.numpy"].numpy().astype(np.uint32), *numpy_rest))
        version, python_state, gauss = rng["python"]
        random.setstate((version, tuple(python_state), gauss))
        agent.action_space.np_random.bit_generator.state = rng["action_space"]
    except (KeyError, ValueError, RuntimeError, TypeError) as error:
        raise CorruptFileError(f"{folder / AGENT_FILE} does not fit this run's agent ({error})") from error
    _load_buffer(folder / BUFFER_FILE, agent)


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise CorruptFileError(f"{path} is not a saved run state ({error})") from error
    if not isinstance(document, dict) or document.get("format") != STATE_FORMAT:
        raise CorruptFileError(f"{path} is a run state of another format than {STATE_FORMAT}")
    return document


def _load_buffer(path: Path, agent: SAC) -> None:
    buffer = agent.replay_buffer
    assert buffer is not None  # SAC always has one
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {name: stored[name] for name in (*BUFFER_ARRAYS, "pos", "full")}
    except (OSError, ValueError, KeyError) as error:
        raise CorruptFileError(f"{path} is not a saved replay buffer ({error})") from error
    for name in BUFFER_ARRAYS:
        expected = getattr(buffer, name)
        if arrays[name].shape != expected.shape or arrays[name].dtype != expected.dtype:
            raise CorruptFileError(
                f"{path}: {name} is {arrays[name].dtype}{arrays[name].shape}, this run's buffer holds "
                f"{expected.dtype}{expected.shape}"
            )
        setattr(buffer, name, arrays[name].copy())
    buffer.pos, buffer.full = int(arrays["pos"]), bool(arrays["full"])


def is_state(folder: Path) -> bool:
    """Whether ``folder`` holds the files of a saved state."""
    return all((folder / name).is_file() for name in (AGENT_FILE, STATE_FILE, BUFFER_FILE))


__all__ = ["Progress", "is_state", "load_state", "read_progress", "save_state"]
