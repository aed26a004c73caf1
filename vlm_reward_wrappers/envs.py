"""Making Meta-World envs the way this package renders and scores them.

Meta-World v3 departs from the gymnasium API in three ways that
:class:`MetaWorldSeeding` repairs:

* ``reset(seed=...)`` is ignored. ``gym.make("Meta-World/MT1", seed=c)`` draws
  50 goal variants from NumPy's *global* generator (seeded by ``c``, or in
  whatever state the process left it when ``c`` is None), and its
  ``RandomTaskSelectWrapper`` picks one of them on every reset with the env's
  ``np_random``. So the same ``reset(seed=s)`` gives a different goal and
  different object positions in every process unless the constructor got a
  seed, and different ones for every constructor seed.
* The observation space is made before the goal becomes visible (its goal
  bounds are zero, so observations lie outside it and ``check_env`` fails).
* A frame rendered right after a reset draws the goal marker where an earlier
  ``reset_model`` put it (positions are not recomputed after the marker moves).

Seeding, as repaired here: on every reset the goal and object positions (the
task's "rand vec") are drawn afresh from the env's own ``np_random``, from
the same ranges MT1's 50 variants are drawn from (Meta-World's
``seeded_rand_vec`` mode); the variant table only gives the task's settings,
and its task-selection wrapper no longer draws. ``reset(seed=s)`` reseeds ``np_random`` and the action and
observation spaces from ``s`` alone, so it fixes the whole episode (goal,
object positions, observations, frames) in any process, whatever seed the
constructor got; later resets without a seed continue that stream, so a
sequence of resets that starts with ``reset(seed=s)`` is reproducible too.

The constructor seed only seeds the stream before the first seeded reset: the
first ``reset()`` without a seed then equals ``reset(seed=c)``, and later
unseeded resets continue from it. Without a constructor seed, unseeded resets
before any seeded one are random, as in gymnasium.

Example:
    >>> env = make_metaworld_env("reach", seed=0, image_size=64)
    >>> obs, info = env.reset(seed=0)
    >>> env.render().shape  # Meta-World's own frame; FrameRenderer gives it upright and faster
    (64, 64, 3)
    >>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from vlm_reward_wrappers.rendering import DEFAULT_CAMERA, ensure_gl_backend
from vlm_reward_wrappers.tasks import resolve_task


def _task_select_wrapper(env: gym.Env) -> Any:
    """The wrapper of a ``Meta-World/MT1`` stack that sets a task variant on reset (it holds ``tasks``)."""
    inner: Any = env
    while isinstance(inner, gym.Wrapper):
        if hasattr(inner, "tasks") and hasattr(inner, "toggle_sample_tasks_on_reset"):
            return inner
        inner = inner.env
    raise TypeError(
        "MetaWorldSeeding needs a single-task Meta-World env with a task-selection wrapper, as made by "
        "gym.make('Meta-World/MT1', env_name=...)"
    )


def _refresh_positions(unwrapped: Any) -> None:
    """Recompute where bodies, sites and cameras are, so a frame rendered right after a reset shows this episode.

    Meta-World's ``reset`` runs ``reset_model`` twice and moves the goal marker
    (a site) after the last position pass, so until the first step the marker
    is drawn where the previous ``reset_model`` put it. Kinematics only: the
    physics state and the next step are unchanged.
    """
    import mujoco

    mujoco.mj_kinematics(unwrapped.model, unwrapped.data)
    mujoco.mj_camlight(unwrapped.model, unwrapped.data)


class MetaWorldSeeding(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Makes ``reset(seed=...)`` determine the episode, and gives the true observation space.

    Every reset draws the goal and object positions from the unwrapped env's
    ``np_random`` (within the task's own ranges) instead of picking one of
    MT1's 50 variants, which ``gym.make`` draws from NumPy's global generator.
    ``reset(seed=s)`` reseeds that generator and the action and observation
    spaces from ``s``, so the episode depends on ``s`` alone: not on the
    process, the constructor seed, or earlier episodes. A ``reset()`` without
    a seed continues the stream of the last seeded reset, or, before any, the
    stream ``gym.make(..., seed=c)`` seeded (then the first ``reset()`` equals
    ``reset(seed=c)``; with no ``c`` it is random).

    Args:
        env: a ``gym.make("Meta-World/MT1", env_name=...)`` env.

    Example:
        >>> env = make_metaworld_env("reach-v3", image_size=32)
        >>> first, _ = env.reset(seed=3)
        >>> again, _ = env.reset(seed=3)
        >>> bool((first == again).all())
        True
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        unwrapped: Any = env.unwrapped
        selector = _task_select_wrapper(env)
        # The task's settings (goal visible in observations): every variant has the same ones.
        unwrapped.set_task(selector.tasks[0])
        selector.toggle_sample_tasks_on_reset(False)
        # Draw the goal and object positions from np_random on every reset (set_task froze them).
        unwrapped._freeze_rand_vec = False
        unwrapped.seeded_rand_vec = True
        # A reset now, so the env can be rendered at once; it must not use up the stream seeded at construction.
        state = unwrapped.np_random.bit_generator.state
        env.reset()
        _refresh_positions(unwrapped)
        unwrapped.np_random.bit_generator.state = state
        self.observation_space = unwrapped.sawyer_observation_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            unwrapped: Any = self.unwrapped
            unwrapped.seed(seed)  # np_random (goal and object positions), the action, observation and goal spaces
            self.observation_space.seed(seed)  # the true space is a new object, not the unwrapped env's
        obs, info = self.env.reset(seed=seed, options=options)
        _refresh_positions(self.unwrapped)
        return obs, info


def make_metaworld_env(
    task: str,
    *,
    seed: int | None = None,
    camera: str = DEFAULT_CAMERA,
    image_size: int = 224,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """A single-task Meta-World env (``Meta-World/MT1``) that renders RGB frames and follows gymnasium's seeding.

    ``reset(seed=s)`` fixes the episode (goal, object positions, observations,
    frames) from ``s`` alone; unseeded resets continue from it (see
    :class:`MetaWorldSeeding`).

    Args:
        task: a task name such as ``"door-open-v3"`` (the ``-v3`` may be left out).
        seed: seeds the resets until the first one given a seed: the first ``reset()`` without a seed
            then equals ``reset(seed=seed)``. It does not change what ``reset(seed=s)`` gives.
        camera: camera for ``env.render()``; the reward wrappers use the same one.
        image_size: width and height of ``env.render()`` frames.
        max_episode_steps: truncation limit (Meta-World's default is 500).
        **kwargs: passed on to ``gym.make``. gymnasium's passive checker is off (``disable_env_checker=True``):
            Meta-World's observations leave the space its env declares, and the true space this env has instead
            passes gymnasium's full ``check_env``.

    Example:
        >>> a = make_metaworld_env("reach-v3", seed=1, image_size=32)
        >>> b = make_metaworld_env("reach-v3", seed=2, image_size=32)
        >>> bool((a.reset(seed=5)[0] == b.reset(seed=5)[0]).all())  # the constructor seed does not matter
        True
        >>> bool((a.reset()[0] == b.reset()[0]).all())  # unseeded resets continue from seed 5
        True
    """
    ensure_gl_backend()
    import metaworld  # noqa: F401  (registers the Meta-World envs)

    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    kwargs.setdefault("disable_env_checker", True)
    env = gym.make(
        "Meta-World/MT1",
        env_name=resolve_task(task),
        seed=seed,
        render_mode="rgb_array",
        camera_name=camera,
        width=image_size,
        height=image_size,
        **kwargs,
    )
    return MetaWorldSeeding(env)
