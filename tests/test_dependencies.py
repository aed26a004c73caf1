"""Dependencies as a user resolves them: the wrappers work without the ``rl`` extra, and what needs it says so.

(The minimum gymnasium is checked by CI: ``.ci/run`` runs the wrapper tests again on gymnasium 1.1.1, the floor
pyproject.toml declares.)
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]

WITHOUT_SB3 = """
import sys
sys.modules["stable_baselines3"] = None  # as if the rl extra were not installed
from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.extras import MissingExtraError

env = VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=32), sys.argv[1])
env.reset(seed=0)
print("reward", env.step(env.action_space.sample())[1])
for load in ("from vlm_reward_wrappers.wrappers import VLMRewardVecEnv", "import vlm_reward_wrappers.rl"):
    try:
        exec(load)
    except MissingExtraError as error:
        print("refused:", error)
"""


def test_the_wrappers_need_no_rl_extra_and_what_does_names_it(tiny_checkpoint: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_SB3, str(tiny_checkpoint)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("reward ") and float(lines[0].split()[1]) == float(lines[0].split()[1])  # finite
    refusals = [line for line in lines if line.startswith("refused:")]
    assert len(refusals) == 2
    assert all('pip install "vlm_reward_wrappers[rl]"' in line for line in refusals)


def test_every_imported_distribution_is_declared() -> None:
    """Each third-party package the code imports is a declared dependency (core, or the ``rl`` extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {
        requirement.split(">")[0].split("<")[0].split("=")[0].split("[")[0].strip().lower().replace("-", "_")
        for requirement in [*project["dependencies"], *project["optional-dependencies"]["rl"]]
    }
    distribution = {"open_clip": "open_clip_torch", "PIL": "pillow"}
    not_required = {"triton"}  # imported only where torch brought it (rendering.guard_triton)
    imported: set[str] = set()
    for path in (REPO / "vlm_reward_wrappers").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    own = set(sys.stdlib_module_names) | {"vlm_reward_wrappers"} | not_required
    third_party = {distribution.get(name, name).lower() for name in imported - own}
    assert third_party - declared == set()


WITHOUT_RAY = """
import sys
sys.modules["ray"] = None  # as if the ray extra were not installed
from vlm_reward_wrappers.execution import Backend, Job, run_all
from vlm_reward_wrappers.extras import MissingExtraError

print("here:", run_all([Job("a job", abs, (-1,))], jobs=1, log=lambda _: None)[0].value)
try:
    run_all([Job("a job", abs, (-1,))], jobs=1, backend=Backend(ray=True))
except MissingExtraError as error:
    print("refused:", error)
"""


def test_runs_go_without_ray_and_asking_for_it_names_the_extra() -> None:
    done = subprocess.run([sys.executable, "-c", WITHOUT_RAY], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0] == "here: 1"
    assert lines[1].startswith("refused: --ray needs ray") and 'pip install "vlm_reward_wrappers[ray]"' in lines[1]
