"""A learned reward computed beside the agent: the env and its renderer in a worker process, scores filled in late.

With a learned reward an SAC step is: the env steps, the frame is rendered
(~11 ms in software GL at 64 px), the reward model scores it (~6 ms), the
agent takes a gradient step (~10 ms). Run one after another, rendering and
scoring take most of the time. Here the env lives in a worker process that
returns each step's observation at once and renders the frame *after*
sending it, while the agent stores the transition and takes its gradient
step; the agent's process scores the frame at the next step and writes the
reward into the replay buffer then. The replay buffer never samples a
transition whose reward is still pending (the newest one, for one gradient
step), which is the only difference from the sequential loop.

* :class:`PipelinedRewardVecEnv`: a one-env SB3 ``VecEnv`` whose rewards come late.
* :class:`DeferredRewardBuffer`: SB3's ``ReplayBuffer`` that holds pending rewards back until filled.

Example:
    >>> spec = RewardSpec.of("runs/quick/checkpoints/triplet-seed0", reward_mode="normalized")
    >>> venv = PipelinedRewardVecEnv(env_fn, spec, "drawer-close-v3")             # doctest: +SKIP
    >>> agent = SAC("MlpPolicy", venv, replay_buffer_class=DeferredRewardBuffer)  # doctest: +SKIP
    >>> venv.attach(agent.replay_buffer)                                          # doctest: +SKIP
    >>> agent.learn(10_000)                                                       # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import multiprocessing
import warnings
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecEnv, VecNormalize
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.models import read_checkpoint_config
from vlm_reward_wrappers.wrappers.frames import PicklableRenderer
from vlm_reward_wrappers.wrappers.scoring import make_reward
from vlm_reward_wrappers.wrappers.spec import FrameSettings, RewardSpec


class DeferredRewardBuffer(ReplayBuffer):
    """A replay buffer whose newest transitions may wait for their rewards; it never samples those.

    :meth:`add` marks every transition pending; :meth:`fill_oldest` writes the
    reward of the oldest pending one. :meth:`sample` draws from the others
    with one ``np.random.randint`` call, as SB3's buffer does.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.optimize_memory_usage:
            raise ValueError("DeferredRewardBuffer does not support optimize_memory_usage=True")
        self.pending: deque[int] = deque()

    def add(self, *args: Any, **kwargs: Any) -> None:
        if self.n_envs != 1:
            raise ValueError("DeferredRewardBuffer holds the transitions of one env")
        self.pending.append(self.pos)
        super().add(*args, **kwargs)

    def fill_oldest(self, reward: float) -> None:
        """Write the reward of the oldest transition still waiting for one."""
        if not self.pending:
            raise RuntimeError("no transition is waiting for a reward")
        self.rewards[self.pending.popleft(), 0] = reward

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        waiting = len(self.pending)  # the newest `waiting` slots, just before self.pos
        if self.full:
            batch_inds = (
                np.random.randint(0, self.buffer_size - waiting, size=batch_size) + self.pos
            ) % self.buffer_size
        else:
            if self.pos - waiting <= 0:
                raise RuntimeError("no transition has its reward yet: step the env before sampling")
            batch_inds = np.random.randint(0, self.pos - waiting, size=batch_size)
        return self._get_samples(batch_inds, env=env)


def _serve(
    connection: Connection, env_fn: Callable[[], gym.Env], camera: str, image_size: int, first_frames: bool
) -> None:
    """The worker: steps the env, sends the result, then renders and sends the frame (terminal frames inline).

    With ``first_frames`` each reset also sends the new episode's first frame (None without)."""
    env = env_fn()
    frames = PicklableRenderer(env, camera, image_size)
    try:
        while True:
            command, argument = connection.recv()
            if command == "spaces":
                connection.send((env.observation_space, env.action_space))
            elif command == "reset":
                obs, info = env.reset(**argument)
                connection.send((obs, info, frames.render() if first_frames else None))
            elif command == "step":
                obs, reward, terminated, truncated, info = env.step(argument)
                if terminated or truncated:
                    frame = frames.render()
                    reset_obs, _ = env.reset()
                    first_frame = frames.render() if first_frames else None
                    connection.send((obs, reward, terminated, truncated, info, frame, reset_obs, first_frame))
                else:
                    connection.send((obs, reward, terminated, truncated, info, None, None, None))
                    connection.send(frames.render())
            elif command == "call":
                name, args, kwargs = argument
                connection.send(getattr(env, name)(*args, **kwargs))
            elif command == "getattr":
                connection.send(getattr(env, argument))
            elif command == "setattr":
                setattr(env, *argument)
                connection.send(None)
            elif command == "close":
                break
    finally:
        frames.close()
        env.close()
        connection.close()


class PipelinedRewardVecEnv(VecEnv):
    """One env in a worker process, rewarded by a reward model whose scores reach the replay buffer one step late.

    Args:
        env_fn: makes the env in the worker (picklable: a module-level function or ``functools.partial``).
        spec: the learned reward (any mode, with its scale and success bonus; for ``shaped`` and
            ``shaped-progress`` the worker also renders each episode's first frame).
        task: the Meta-World task (its native goal is the reward's goal unless ``spec`` names one).
        camera, image_size: override the checkpoint's for the frames scored.

    The rewards :meth:`step_wait` returns are placeholders (0); the true ones
    go into the attached :class:`DeferredRewardBuffer`. Call :meth:`attach`
    with the agent's buffer before learning and :meth:`flush` before saving it.
    Infos carry ``gt_reward`` and ``is_success`` at once.
    """

    def __init__(
        self,
        env_fn: Callable[[], gym.Env],
        spec: RewardSpec,
        task: str,
        *,
        camera: str | None = None,
        image_size: int | None = None,
    ) -> None:
        config = read_checkpoint_config(spec.checkpoint)[0]
        frames = FrameSettings(task, camera or config.camera, image_size or config.image_size)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # frames unlike training: the caller reports it once
            self.scorer, self.transform = make_reward(spec, [frames])
        context = multiprocessing.get_context("spawn")
        self._connection, worker_end = context.Pipe()
        self._process = context.Process(
            target=_serve,
            args=(worker_end, env_fn, frames.camera, frames.image_size, self.transform.needs_first_frames),
            daemon=True,
        )
        self._process.start()
        worker_end.close()
        self._connection.send(("spaces", None))
        observation_space, action_space = self._connection.recv()
        self.buffer: DeferredRewardBuffer | None = None
        # (frame if already here, success, the next episode's first frame after a last step)
        self._pending: deque[tuple[np.ndarray | None, bool, np.ndarray | None]] = deque()
        self._actions: np.ndarray | None = None
        self._closed = False
        super().__init__(1, observation_space, action_space)  # asks the worker for the env's render_mode

    def attach(self, buffer: ReplayBuffer) -> None:
        """The replay buffer the late rewards are written into (the agent's ``replay_buffer``)."""
        if not isinstance(buffer, DeferredRewardBuffer):
            raise TypeError("make the agent with replay_buffer_class=DeferredRewardBuffer")
        self.buffer = buffer

    def flush(self) -> None:
        """Score every frame still pending and write its reward into the buffer."""
        while self._pending:
            frame, success, first_frame = self._pending.popleft()
            if frame is None:
                frame = self._connection.recv()
            reward = self.transform(self.scorer(frame[None]), np.array([success]))[0]
            if first_frame is not None:
                self.transform.start(self.scorer(first_frame[None]))
            if self.buffer is None:
                raise RuntimeError("call attach(agent.replay_buffer) before stepping: the rewards go there")
            self.buffer.fill_oldest(float(reward))

    def reset(self) -> VecEnvObs:
        self.flush()
        seed = self._seeds[0] if self._seeds else None
        self._connection.send(("reset", {"seed": seed, "options": self._options[0] or None}))
        obs, info, first_frame = self._connection.recv()
        if first_frame is not None:
            self.transform.start(self.scorer(first_frame[None]))
        self._reset_seeds()
        self._reset_options()
        self.reset_infos = [info]
        return obs[None]

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        self.flush()  # the previous frame: rendered while the agent stored its transition and trained
        assert self._actions is not None
        self._connection.send(("step", self._actions[0]))
        obs, gt_reward, terminated, truncated, info, frame, reset_obs, first_frame = self._connection.recv()
        success = bool(info.get(info_keys.SUCCESS, False))
        info = {**info, info_keys.GT_REWARD: float(gt_reward), info_keys.IS_SUCCESS: success}
        done = terminated or truncated
        info["TimeLimit.truncated"] = truncated and not terminated
        if done:
            info["terminal_observation"] = obs
            obs = reset_obs
        self._pending.append((frame, success, first_frame))
        return obs[None], np.zeros(1, dtype=np.float32), np.array([done]), [info]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with contextlib.suppress(BrokenPipeError, OSError):
            self._connection.send(("close", None))
        self._process.join(timeout=10)
        if self._process.is_alive():  # a worker that does not stop (a busy machine, a stuck renderer) is killed
            self._process.kill()
            self._process.join()  # and reaped, so that no process outlives the run

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        self.flush()  # a frame may be on its way first
        self._connection.send(("getattr", attr_name))
        return [self._connection.recv()]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        self.flush()  # a frame may be on its way first
        self._connection.send(("setattr", (attr_name, value)))
        self._connection.recv()

    def env_method(self, method_name: str, *args: Any, indices: VecEnvIndices = None, **kwargs: Any) -> list[Any]:
        self.flush()  # a frame may be on its way first
        self._connection.send(("call", (method_name, args, kwargs)))
        return [self._connection.recv()]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False]
