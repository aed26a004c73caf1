import metaworld.env_dict
import pytest

from vlm_reward_wrappers.tasks import (
    ALL_TASKS,
    ML45_TEST,
    ML45_TRAIN,
    MT10,
    TASKS,
    UnknownTaskError,
    goal_text,
    resolve_task,
)


def test_all_fifty_metaworld_tasks_have_sentences():
    assert set(ALL_TASKS) == set(metaworld.env_dict.ALL_V3_ENVIRONMENTS)
    for task in TASKS.values():
        assert task.goal and len(task.paraphrases) >= 2
        assert len(set(task.sentences)) == len(task.sentences)
    goals = [task.goal for task in TASKS.values()]
    assert len(set(goals)) == 50, "two tasks share a goal sentence"


def test_splits_match_metaworld():
    assert set(MT10) == set(metaworld.env_dict.MT10_V3)
    assert set(ML45_TRAIN) == set(metaworld.env_dict.ML45_V3["train"])
    assert set(ML45_TEST) == set(metaworld.env_dict.ML45_V3["test"])
    assert not set(ML45_TRAIN) & set(ML45_TEST)


def test_resolve_task_accepts_short_names_and_suggests_close_ones():
    assert resolve_task("door-open") == "door-open-v3"
    assert goal_text("reach") == "reach the goal position"
    with pytest.raises(UnknownTaskError, match="door-open-v3"):
        resolve_task("dor-open")
    with pytest.raises(UnknownTaskError, match="vlm-rewards tasks"):
        resolve_task("fly-to-the-moon")
