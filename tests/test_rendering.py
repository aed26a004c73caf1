"""Real Meta-World frames: upright, same view as env.render(), fast path and fallback."""

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import FrameRenderer

SIZE = 96


@pytest.fixture(scope="module")
def door_env():
    env = make_metaworld_env("door-open-v3", seed=0, image_size=SIZE)
    env.reset(seed=0)
    yield env
    env.close()


def _project(env, camera: str, point: np.ndarray, size: int) -> tuple[int, int]:
    """Pixel (row, col) where a world point appears in the camera's own image."""
    model, data = env.unwrapped.model, env.unwrapped.data
    camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
    rotation = data.cam_xmat[camera_id].reshape(3, 3)
    local = rotation.T @ (point - data.cam_xpos[camera_id])
    focal = size / 2 / np.tan(np.deg2rad(model.cam_fovy[camera_id]) / 2)
    return int(size / 2 - focal * local[1] / -local[2]), int(size / 2 + focal * local[0] / -local[2])


def _greenness(patch: np.ndarray) -> float:
    patch = patch.astype(float)
    return float((patch[..., 1] - np.maximum(patch[..., 0], patch[..., 2])).max())


@pytest.mark.parametrize("camera", ["corner", "corner2", "corner3", "corner4"])
def test_corner_frames_are_rotated_upright_not_mirrored(door_env, camera):
    """Meta-World's corner cameras are mounted upside down; frames come out upright and unmirrored.

    The green goal marker must sit where a 180-degree rotation of the camera's
    own image puts it, and a point above the marker must appear above it.
    """
    goal = door_env.unwrapped.data.site("goal").xpos.copy()
    row, col = _project(door_env, camera, goal, SIZE)
    above_row, _ = _project(door_env, camera, goal + np.array([0.0, 0.0, 0.3]), SIZE)
    assert above_row > row, "this camera's own image is not upside down"
    with FrameRenderer(door_env, camera, SIZE, SIZE) as renderer:
        frame = renderer.render()
    upright_row, upright_col = SIZE - 1 - row, SIZE - 1 - col
    assert SIZE - 1 - above_row < upright_row  # higher in the world, higher in the frame
    near_marker = frame[upright_row - 2 : upright_row + 3, upright_col - 2 : upright_col + 3]
    assert _greenness(near_marker) > 60, "goal marker not where the upright frame should show it"
    mirrored = frame[upright_row - 2 : upright_row + 3, col - 2 : col + 3]
    assert _greenness(mirrored) < 30


def test_table_is_at_the_bottom_of_the_default_view(door_env):
    with FrameRenderer(door_env, "corner", SIZE, SIZE) as renderer:
        frame = renderer.render().astype(float)
    red, green, blue = frame[..., 0], frame[..., 1], frame[..., 2]
    wood = (red - blue > 30) & (green - blue > 15)  # the brown table top (the red robot has little green)
    assert wood[SIZE // 2 :].mean() > 2 * wood[: SIZE // 2].mean()


def test_fast_frames_show_the_same_view_as_env_render(door_env):
    reference = door_env.render()[::-1, ::-1].astype(float)  # Meta-World's own corner frame, rotated
    with FrameRenderer(door_env, "corner", SIZE, SIZE) as renderer:
        assert renderer.is_fast
        frame = renderer.render()
    assert frame.dtype == np.uint8 and frame.shape == (SIZE, SIZE, 3)
    correlation = np.corrcoef(reference.ravel(), frame.astype(float).ravel())[0, 1]
    assert correlation > 0.9
    # Frames follow the simulation.
    door_env.step(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    for _ in range(10):
        door_env.step(np.array([1.0, 0.0, 0.0, 0.0], dtype=np.float32))
    with FrameRenderer(door_env, "corner", SIZE, SIZE) as renderer:
        assert not np.array_equal(renderer.render(), frame)


def test_env_render_is_unchanged_after_a_fast_renderer_is_made(door_env):
    before = door_env.render()
    with FrameRenderer(door_env, "corner", SIZE, SIZE) as renderer:
        renderer.render()
    after = door_env.render()
    assert after.mean() > 20  # not black
    np.testing.assert_array_equal(before, after)


def test_non_square_sizes_and_unknown_camera(door_env):
    with FrameRenderer(door_env, "topview", width=48, height=32) as renderer:
        assert renderer.render().shape == (32, 48, 3)
    with pytest.raises(ValueError, match="behindGripper"):
        FrameRenderer(door_env, "side")


def test_other_envs_fall_back_to_env_render():
    env = gym.make("InvertedPendulum-v5", render_mode="rgb_array", width=32, height=32)
    env.reset(seed=0)
    renderer = FrameRenderer(env)
    assert not renderer.is_fast
    np.testing.assert_array_equal(renderer.render(), env.render())
    env.close()


def test_env_without_rgb_array_gets_a_clear_error():
    env = gym.make("InvertedPendulum-v5")
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        FrameRenderer(env)
    env.close()


@pytest.mark.parametrize("order", ["package first", "gl first"])
def test_torch_side_imports_after_rendering_do_not_crash(order):
    """Mesa's software GL and Triton (imported by torch via open_clip) both load LLVM; Triton second crashes."""
    import subprocess
    import sys

    package_first = (
        "import vlm_reward_wrappers\n"
        "from vlm_reward_wrappers.envs import make_metaworld_env\n"
        "env = make_metaworld_env('reach-v3', seed=0, image_size=16); env.reset(seed=0)\n"
        "env.render()\n"
    )
    gl_first = (  # software GL loaded by gymnasium's own viewer before the package is imported
        "import gymnasium as gym, metaworld\n"
        "env = gym.make('Meta-World/MT1', env_name='reach-v3', render_mode='rgb_array', width=16, height=16)\n"
        "env.reset()\n"
        "env.render()\n"
        "import vlm_reward_wrappers\n"
    )
    script = (package_first if order == "package first" else gl_first) + (
        "from vlm_reward_wrappers.rendering import FrameRenderer\n"
        "FrameRenderer(env, 'corner', 16, 16).render()\n"
        "import open_clip, torch\n"
        "print(float(torch.ones(2).sum()))\n"
    )
    environment = {**__import__("os").environ, "MUJOCO_GL": "egl"}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0 and result.stdout.strip().endswith("2.0"), result.stderr[-2000:]
    if order == "gl first":
        assert "Triton is disabled" in result.stderr
