"""Fast, upright, offscreen frames of Meta-World envs.

``env.render()`` in Meta-World draws through gymnasium's viewer, with a 4096-px
shadow map and 4x multisampling: 11-15 frames/s at 224 px in software GL.
:class:`FrameRenderer` draws the same scene through its own ``mujoco.Renderer``
with no multisampling, shadows or reflections, several times faster (see
``benchmarks/render_speed.py``). The settings are applied only while its own GL
context is made, so the env's ``render()`` is left exactly as it was.

Meta-World's ``corner*`` cameras are mounted upside down (their image "up"
axis points at the floor). MuJoCo draws what such a camera sees, so the frame
is rotated by 180 degrees; flipping the rows alone would also mirror the scene
left to right. :class:`FrameRenderer` rotates every camera whose up axis
points below the horizon, so frames always show the table at the bottom.

Example:
    >>> import gymnasium as gym
    >>> import metaworld  # registers the Meta-World envs
    >>> env = gym.make("Meta-World/MT1", env_name="reach-v3", seed=0)
    >>> _ = env.reset(seed=0)
    >>> renderer = FrameRenderer(env, camera="corner", width=64, height=64)
    >>> renderer.render().shape
    (64, 64, 3)
    >>> renderer.close()
"""

from __future__ import annotations

import atexit
import ctypes
import importlib.util
import os
import sys
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np

DEFAULT_CAMERA = "corner"


GL_HELP = (
    "Headless rendering needs EGL or OSMesa: on Debian/Ubuntu `sudo apt install libegl1` and set "
    "MUJOCO_GL=egl, or `sudo apt install libosmesa6` and set MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa; "
    "set it before mujoco or metaworld is first imported."
)


_LIVE_RENDERERS: weakref.WeakSet[FrameRenderer] = weakref.WeakSet()
_exit_handler_registered = False
_gl_process: int | None = None
"""The process that opened a GL context here (a forked child inherits the value, not a usable context)."""


def _close_live_renderers() -> None:
    """Free GL contexts before MuJoCo's own exit handler tears EGL down (avoids noise at exit)."""
    for renderer in list(_LIVE_RENDERERS):
        renderer.close()


class RenderingUnavailableError(RuntimeError):
    """No working offscreen OpenGL backend for MuJoCo."""


def is_metaworld_env(env: Any) -> bool:
    """Whether ``env`` (possibly wrapped) is a Meta-World Sawyer env."""
    unwrapped = getattr(env, "unwrapped", env)
    try:
        from metaworld.sawyer_xyz_env import SawyerXYZEnv
    except ImportError:  # pragma: no cover - metaworld is a dependency
        return False
    return isinstance(unwrapped, SawyerXYZEnv)


def check_camera(model: Any, camera: str) -> int:
    """The id of ``camera`` in a MuJoCo model; a ``ValueError`` listing the model's cameras if it has none such."""
    import mujoco

    camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    if camera_id < 0:
        names = [mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_CAMERA, index) for index in range(model.ncam)]
        raise ValueError(f"camera {camera!r} is not in this model; pass camera= one of {names}")
    return int(camera_id)


def _rotate_needed(model: Any, data: Any, camera_id: int) -> bool:
    """A camera is upside down when its image-up axis points below the horizon."""
    import mujoco

    mujoco.mj_forward(model, data)
    up_axis = np.asarray(data.cam_xmat[camera_id]).reshape(3, 3)[:, 1]
    return bool(up_axis[2] < 0.0)


class FrameRenderer:
    """Upright uint8 RGB frames of an env, as fast as software GL allows.

    For Meta-World envs it draws with a private ``mujoco.Renderer`` on the
    env's model and data. For any other env it calls ``env.render()``, which
    then must have been made with ``render_mode="rgb_array"``.

    Args:
        env: the env to draw (wrappers are fine).
        camera: a camera name of the model (Meta-World: topview, corner,
            corner2, corner3, corner4, behindGripper, gripperPOV).
        width, height: frame size in pixels.
    """

    def __init__(self, env: Any, camera: str = DEFAULT_CAMERA, width: int = 224, height: int = 224) -> None:
        if width <= 0 or height <= 0:
            raise ValueError(f"frame size must be positive, got width={width}, height={height}")
        self.env = env
        self.camera = camera
        self.width = int(width)
        self.height = int(height)
        self._renderer: Any = None
        self._camera_id = -1
        self._rotate = False
        if is_metaworld_env(env):
            self._make_fast_renderer()
        else:
            render_mode = getattr(env, "render_mode", None)
            if render_mode != "rgb_array":
                raise ValueError(
                    f"{type(getattr(env, 'unwrapped', env)).__name__} has render_mode={render_mode!r}, so it "
                    "gives no frames. Make it with render_mode='rgb_array', e.g. "
                    "gym.make(env_id, render_mode='rgb_array')."
                )

    @property
    def is_fast(self) -> bool:
        """True when frames come from the private renderer, not ``env.render()``."""
        return self._renderer is not None

    def _make_fast_renderer(self) -> None:
        global _gl_process, _exit_handler_registered
        if _gl_process not in (None, os.getpid()):
            raise RenderingUnavailableError(
                f"this process was forked from process {_gl_process} after it had opened an OpenGL context, which "
                "cannot be used after a fork (EGL hangs). Start worker processes with 'spawn' or 'forkserver': "
                "gym.vector.AsyncVectorEnv(env_fns, context='spawn'), "
                "SubprocVecEnv(env_fns, start_method='forkserver')."
            )
        ensure_gl_backend()
        guard_triton()
        import mujoco

        unwrapped = self.env.unwrapped
        model, data = unwrapped.model, unwrapped.data
        self._camera_id = check_camera(model, self.camera)
        quality, visual = model.vis.quality, model.vis.global_
        saved = (quality.offsamples, quality.shadowsize, visual.offwidth, visual.offheight)
        quality.offsamples = 0
        quality.shadowsize = 0
        visual.offwidth = max(visual.offwidth, self.width)
        visual.offheight = max(visual.offheight, self.height)
        try:
            self._renderer = mujoco.Renderer(model, height=self.height, width=self.width)
        except Exception as error:  # GL backends fail with many exception types
            raise RenderingUnavailableError(
                f"MuJoCo could not open an offscreen GL context: {error}. {GL_HELP}"
            ) from error
        finally:
            quality.offsamples, quality.shadowsize = saved[0], saved[1]
            visual.offwidth, visual.offheight = saved[2], saved[3]
        _gl_process = os.getpid()
        if not _exit_handler_registered:  # registered after MuJoCo's own, so it runs first
            atexit.register(_close_live_renderers)
            _exit_handler_registered = True
        _LIVE_RENDERERS.add(self)
        flags = self._renderer.scene.flags
        flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
        self._rotate = _rotate_needed(model, data, self._camera_id)

    def render(self) -> np.ndarray:
        """The current frame, upright, as a ``(height, width, 3)`` uint8 array."""
        if self._renderer is None:
            frame = self.env.render()
            if frame is None:
                raise ValueError("env.render() returned None: make the env with render_mode='rgb_array'.")
            return np.ascontiguousarray(frame)
        self._renderer.update_scene(self.env.unwrapped.data, camera=self._camera_id)
        frame = self._renderer.render()
        self._restore_env_context()
        if self._rotate:
            frame = frame[::-1, ::-1]
        return np.ascontiguousarray(frame)

    def _restore_env_context(self) -> None:
        """Make the env's own viewer context current again.

        gymnasium's viewer makes its GL context current only when it is made,
        not before each ``env.render()``; without this, ``env.render()`` would
        draw into this renderer's context and return black frames.
        """
        env_renderer = getattr(self.env.unwrapped, "mujoco_renderer", None)
        viewer = getattr(env_renderer, "viewer", None)
        if viewer is not None:
            viewer.make_context_current()

    def close(self) -> None:
        """Free the GL context (safe to call twice)."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
            self._restore_env_context()

    def __enter__(self) -> FrameRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict:
        raise TypeError("FrameRenderer holds a GL context and cannot be pickled; make a new one in the other process.")


def _llvm_in_process() -> bool:
    """Whether an LLVM library (Mesa's software GL brings one) is loaded in this process."""
    try:
        return "libLLVM" in Path("/proc/self/maps").read_text()
    except OSError:
        return False


def guard_triton() -> None:
    """Keep Triton and Mesa's software GL from crashing the process.

    Both load LLVM. Triton (which torch imports through torchvision and
    open_clip) loaded *after* Mesa's LLVM kills the process with a segmentation
    fault; loaded before, both work. So: before any GL context exists, import
    Triton now (0.4 s, only when installed); if software GL was already loaded
    by someone else (e.g. an earlier ``env.render()``), make ``import triton``
    fail cleanly instead, so torch runs without it (Triton serves only
    ``torch.compile`` on GPUs) and a warning says so. Called on import of this
    package and before its first GL context.
    """
    if "triton" in sys.modules or importlib.util.find_spec("triton") is None:
        return
    if _llvm_in_process():
        sys.modules["triton"] = None  # type: ignore[assignment]  # `import triton` now raises ImportError
        warnings.warn(
            "software OpenGL (Mesa) was loaded before vlm_reward_wrappers: Triton is disabled in this process, since "
            "loading it now would crash it (torch runs without it; only torch.compile on GPUs needs it). "
            "Import vlm_reward_wrappers before rendering to keep it.",
            RuntimeWarning,
            stacklevel=2,
        )
    else:
        import triton  # noqa: F401


def _library_loads(*names: str) -> bool:
    for name in names:
        try:
            ctypes.CDLL(name)
            return True
        except OSError:
            continue
    return False


def ensure_gl_backend() -> str | None:
    """Pick an offscreen GL backend for MuJoCo if the user set none.

    ``MUJOCO_GL`` is read by MuJoCo when it is first imported. When it is not
    set, this picks ``egl`` if libEGL loads, else ``osmesa`` if libOSMesa
    loads. Returns the backend in effect (None: MuJoCo's own default).
    Called on import of this package, before MuJoCo is imported.
    """
    chosen = os.environ.get("MUJOCO_GL")
    if chosen or sys.platform != "linux":
        return chosen
    if "mujoco" in sys.modules:
        return None
    if _library_loads("libEGL.so.1", "libEGL.so"):
        os.environ["MUJOCO_GL"] = "egl"
    elif _library_loads("libOSMesa.so.8", "libOSMesa.so.6", "libOSMesa.so"):
        os.environ["MUJOCO_GL"] = "osmesa"
        os.environ.setdefault("PYOPENGL_PLATFORM", "osmesa")
    return os.environ.get("MUJOCO_GL")
