"""The command line as a newcomer meets it: every ``--help``, the version, exit codes, one flag name per idea (the
names of version 0.2 kept as hidden aliases), and a ``--help`` that imports no model code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vlm_reward_wrappers.cli import COMMANDS, build_parser, main
from vlm_reward_wrappers.version import __version__


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vlm_reward_wrappers", *args], capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_s_help_works(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main([command, "--help"])
    assert exit_.value.code == 0
    shown = capsys.readouterr().out
    assert shown.startswith(f"usage: vlm-rewards {command}") and COMMANDS[command][0].split()[0] in shown
    assert "--ckpt" not in shown and "--demonstrations-per-task" not in shown  # old names: accepted, not shown
    if command == "rl":
        assert "--eval-freq" in shown and "--eval-every" not in shown  # env steps, as SB3's eval_freq
    if command in ("train", "evaluate", "adapt", "benchmark"):
        assert "--device" in shown


def test_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0 and capsys.readouterr().out.strip() == f"vlm-rewards {__version__}"


def test_help_imports_no_model_code() -> None:
    """``vlm-rewards --help`` builds no subcommand's flags, so neither torch nor open_clip is imported."""
    probe = (
        "import sys\nfrom vlm_reward_wrappers.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
        "    pass\nprint(sorted(name for name in ('torch', 'open_clip', 'metaworld', 'stable_baselines3') "
        "if name in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_one_flag_name_per_idea_with_the_old_names_as_aliases() -> None:
    parser = build_parser()
    common = ["--data", "d", "--out", "o"]
    for old, new in (("--ckpt", "--checkpoint"), ("--checkpoint", "--checkpoint")):
        assert parser.parse_args(["evaluate", old, "c", *common]).checkpoint == "c", (old, new)
        assert parser.parse_args(["adapt", old, "c", *common]).checkpoint == "c", (old, new)
    assert parser.parse_args(["pack", "c"]).checkpoint == "c"
    evaluate = parser.parse_args(["evaluate", "--checkpoint", "c", *common, "--demonstrations-per-task", "3"])
    assert evaluate.demonstrations == 3 and evaluate.demo_data is None
    assert parser.parse_args(["adapt", "--checkpoint", "c", *common, "--demonstrations", "3"]).demonstrations == 3
    assert parser.parse_args(["rl", "--eval-every", "400"]).eval_freq == 400
    assert parser.parse_args(["rl", "--eval-freq", "400"]).eval_freq == 400


def test_usage_errors_exit_2_and_failed_runs_exit_1(tmp_path) -> None:
    """2: the command line cannot be run (argparse's own, a bad value, a device torch cannot use); 1: a run
    that fails. Each with a one-line message, never a traceback."""
    common = ["--data", str(tmp_path), "--out", str(tmp_path / "out")]
    usage = {
        "a folder where a count goes": ["evaluate", "--checkpoint", "c", *common, "--demonstrations", "data/demos"],
        "no such device": ["evaluate", "--checkpoint", "c", *common, "--device", "gpu"],
        "no GPU here": ["train", "--objective", "triplet", *common, "--device", "cuda:7"],
        "a bad config value": ["collect", "--tasks", "reach-v3", "--episodes-per-task", "0", "--out", str(tmp_path)],
        "a missing flag": ["evaluate", *common],
    }
    for why, argv in usage.items():
        done = _cli(*argv)
        assert done.returncode == 2, (why, done.stderr)
        assert "error:" in done.stderr and "Traceback" not in done.stderr, why
    assert "--demo-data" in _cli(*usage["a folder where a count goes"]).stderr
    failed = _cli("evaluate", "--checkpoint", str(tmp_path / "nope"), *common)
    assert failed.returncode == 1 and "no checkpoint at" in failed.stderr and "Traceback" not in failed.stderr
