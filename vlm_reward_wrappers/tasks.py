"""The 50 Meta-World v3 tasks, their goal sentences, and the standard splits.

Every task has one canonical goal sentence (what a reward model is asked to
score against) and a few paraphrases (text augmentation for training).

Example:
    >>> from vlm_reward_wrappers.tasks import goal_text, resolve_task, ML45_TEST
    >>> resolve_task("door-open")
    'door-open-v3'
    >>> goal_text("door-open-v3")
    'open the door'
    >>> "door-lock-v3" in ML45_TEST
    True
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """A Meta-World task: its env name, goal sentence and paraphrases."""

    name: str
    goal: str
    paraphrases: tuple[str, ...]

    @property
    def sentences(self) -> tuple[str, ...]:
        """The goal sentence followed by its paraphrases."""
        return (self.goal, *self.paraphrases)


_SENTENCES: dict[str, tuple[str, ...]] = {
    "assembly-v3": ("put the ring on the peg", "slide the ring onto the peg", "assemble the ring onto the peg"),
    "basketball-v3": ("put the ball into the hoop", "dunk the ball in the basket", "drop the ball through the hoop"),
    "bin-picking-v3": (
        "move the cube from one bin to the other",
        "pick the cube out of the bin and place it in the other bin",
        "transfer the cube to the other bin",
    ),
    "box-close-v3": ("put the lid on the box", "close the box with its lid", "place the lid onto the box"),
    "button-press-topdown-v3": (
        "press the button from the top",
        "push the button down from above",
        "press down on the button",
    ),
    "button-press-topdown-wall-v3": (
        "press the button from the top behind the wall",
        "push the button down from above past the wall",
        "press down on the button behind the wall",
    ),
    "button-press-v3": ("press the button", "push the button in", "press the button on the box"),
    "button-press-wall-v3": (
        "press the button behind the wall",
        "push the button in past the wall",
        "reach past the wall and press the button",
    ),
    "coffee-button-v3": (
        "press the button on the coffee machine",
        "push the coffee machine button",
        "start the coffee machine",
    ),
    "coffee-pull-v3": (
        "pull the mug away from the coffee machine",
        "take the mug out of the coffee machine",
        "slide the mug back from the coffee machine",
    ),
    "coffee-push-v3": (
        "push the mug under the coffee machine",
        "slide the mug into the coffee machine",
        "place the mug under the coffee spout",
    ),
    "dial-turn-v3": ("turn the dial", "rotate the dial", "twist the knob around"),
    "disassemble-v3": ("take the ring off the peg", "lift the ring off the peg", "remove the ring from the peg"),
    "door-close-v3": ("close the door", "push the door shut", "shut the door"),
    "door-lock-v3": ("lock the door", "turn the door lock down", "rotate the lock to lock the door"),
    "door-open-v3": ("open the door", "pull the door open", "swing the door open"),
    "door-unlock-v3": ("unlock the door", "turn the door lock up", "rotate the lock to unlock the door"),
    "hand-insert-v3": (
        "put the hand into the hole",
        "insert the gripper into the hole",
        "move the hand down into the hole",
    ),
    "drawer-close-v3": ("close the drawer", "push the drawer shut", "slide the drawer closed"),
    "drawer-open-v3": ("open the drawer", "pull the drawer open", "slide the drawer out"),
    "faucet-open-v3": ("turn the faucet on", "rotate the faucet handle to open it", "open the faucet"),
    "faucet-close-v3": ("turn the faucet off", "rotate the faucet handle to close it", "close the faucet"),
    "hammer-v3": ("hammer the nail into the wall", "hit the nail with the hammer", "drive the nail in with the hammer"),
    "handle-press-side-v3": (
        "press the handle down from the side",
        "push the side handle down",
        "press down the handle sideways",
    ),
    "handle-press-v3": ("press the handle down", "push the handle down", "press down on the handle"),
    "handle-pull-side-v3": (
        "pull the handle up from the side",
        "lift the side handle up",
        "pull up the handle sideways",
    ),
    "handle-pull-v3": ("pull the handle up", "lift the handle up", "raise the handle"),
    "lever-pull-v3": ("pull the lever up", "lift the lever", "raise the lever"),
    "pick-place-wall-v3": (
        "pick up the puck and place it at the goal behind the wall",
        "move the puck over the wall to the goal",
        "lift the puck past the wall onto the goal",
    ),
    "pick-out-of-hole-v3": (
        "pick the puck out of the hole",
        "lift the puck out of the hole",
        "take the puck out of the hole",
    ),
    "pick-place-v3": (
        "pick up the puck and place it at the goal",
        "move the puck to the goal",
        "lift the puck and put it on the goal",
    ),
    "plate-slide-v3": (
        "slide the plate into the goal",
        "push the plate into the net",
        "slide the plate forward into the goal",
    ),
    "plate-slide-side-v3": (
        "slide the plate sideways into the goal",
        "push the plate sideways into the net",
        "slide the plate to the side into the goal",
    ),
    "plate-slide-back-v3": (
        "slide the plate back out of the goal",
        "pull the plate back out of the net",
        "slide the plate backward from the goal",
    ),
    "plate-slide-back-side-v3": (
        "slide the plate sideways out of the goal",
        "pull the plate sideways out of the net",
        "slide the plate back to the side",
    ),
    "peg-insert-side-v3": (
        "insert the peg into the hole from the side",
        "push the peg sideways into the hole",
        "put the peg in the side hole",
    ),
    "peg-unplug-side-v3": (
        "unplug the peg from the side",
        "pull the peg out of the side hole",
        "remove the peg from the hole",
    ),
    "soccer-v3": ("kick the ball into the goal", "push the soccer ball into the net", "score a goal with the ball"),
    "stick-push-v3": (
        "push the thermos with the stick",
        "use the stick to push the thermos",
        "grab the stick and push the thermos to the goal",
    ),
    "stick-pull-v3": (
        "pull the thermos with the stick",
        "use the stick to pull the thermos",
        "grab the stick and pull the thermos to the goal",
    ),
    "push-v3": (
        "push the puck to the goal",
        "slide the puck to the goal",
        "push the puck across the table to the goal",
    ),
    "push-wall-v3": (
        "push the puck around the wall to the goal",
        "slide the puck past the wall to the goal",
        "push the puck to the goal behind the wall",
    ),
    "push-back-v3": (
        "push the puck back to the goal",
        "slide the puck backward to the goal",
        "pull the puck back to the goal",
    ),
    "reach-v3": ("reach the goal position", "move the gripper to the goal", "put the hand at the goal"),
    "reach-wall-v3": (
        "reach the goal position behind the wall",
        "move the gripper over the wall to the goal",
        "reach past the wall to the goal",
    ),
    "shelf-place-v3": ("place the puck on the shelf", "put the puck onto the shelf", "lift the puck onto the shelf"),
    "sweep-into-v3": ("sweep the puck into the hole", "push the puck into the hole", "slide the puck into the hole"),
    "sweep-v3": (
        "sweep the puck off the table",
        "push the puck off the edge of the table",
        "sweep the puck to the edge",
    ),
    "window-open-v3": ("open the window", "slide the window open", "push the window open"),
    "window-close-v3": ("close the window", "slide the window shut", "push the window closed"),
}

TASKS: dict[str, Task] = {
    name: Task(name=name, goal=sentences[0], paraphrases=sentences[1:]) for name, sentences in _SENTENCES.items()
}
"""All 50 Meta-World v3 tasks by env name."""

ALL_TASKS: tuple[str, ...] = tuple(TASKS)

MT10: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
"""Meta-World's MT10 benchmark tasks."""

ML45_TEST: tuple[str, ...] = ("bin-picking-v3", "box-close-v3", "hand-insert-v3", "door-lock-v3", "door-unlock-v3")
"""Meta-World ML45 test tasks: never used in any training stage of this package."""

ML45_TRAIN: tuple[str, ...] = tuple(name for name in ALL_TASKS if name not in ML45_TEST)
"""Meta-World ML45 training tasks (the other 45)."""

DEFAULT_BASELINE_TEXT = "a robot arm"
"""Baseline sentence for the VLM-RM goal-baseline projection."""


class UnknownTaskError(ValueError):
    """A task name that is not one of the 50 Meta-World v3 tasks."""


def resolve_task(name: str) -> str:
    """Return the canonical ``<name>-v3`` env name for ``name``.

    Accepts the name with or without the ``-v3`` suffix. Raises
    :class:`UnknownTaskError` listing the closest valid names otherwise.

    >>> resolve_task("reach")
    'reach-v3'
    """
    candidate = name.strip()
    if candidate in TASKS:
        return candidate
    if f"{candidate}-v3" in TASKS:
        return f"{candidate}-v3"
    close = difflib.get_close_matches(
        candidate if candidate.endswith("-v3") else f"{candidate}-v3", ALL_TASKS, n=3, cutoff=0.5
    )
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    raise UnknownTaskError(
        f"unknown Meta-World task {name!r}.{hint} Valid names are the 50 v3 tasks, "
        "listed by `vlm-rewards tasks` (e.g. reach-v3, door-open-v3)."
    )


def goal_text(name: str) -> str:
    """The canonical goal sentence of a task."""
    return TASKS[resolve_task(name)].goal


SAME_SCENE_PAIRS = (
    ("drawer-open-v3", "drawer-close-v3"),
    ("window-open-v3", "window-close-v3"),
    ("faucet-open-v3", "faucet-close-v3"),
    ("door-open-v3", "door-close-v3"),
)
"""Pairs of Meta-World tasks that share a scene (the same objects, differently placed at the start) and differ in
the instruction: goal-swap accuracy over these pairs asks whether a reward reads the goal more than the scene.
(button-press and button-press-topdown are not a pair: their button boxes differ.)"""


def same_scene_tasks(name: str) -> tuple[str, ...]:
    """The tasks that share ``name``'s scene (see :data:`SAME_SCENE_PAIRS`), without ``name`` itself.

    Example:
        >>> same_scene_tasks("drawer-open-v3")
        ('drawer-close-v3',)
    """
    return tuple(other for pair in SAME_SCENE_PAIRS if name in pair for other in pair if other != name)


SPLITS: dict[str, tuple[str, ...]] = {"MT10": MT10, "ML45-train": ML45_TRAIN, "ML45-test": ML45_TEST}
"""Split names accepted wherever a list of tasks is: each stands for its tasks."""


def expand_tasks(names: Iterable[str]) -> tuple[str, ...]:
    """Canonical task names, with split names (:data:`SPLITS`) expanded and duplicates dropped.

    >>> expand_tasks(["reach", "ML45-test", "reach-v3"])[:3]
    ('reach-v3', 'bin-picking-v3', 'box-close-v3')
    """
    expanded: list[str] = []
    for name in names:
        expanded.extend(SPLITS.get(name, (name,)))
    return tuple(dict.fromkeys(resolve_task(name) for name in expanded))
