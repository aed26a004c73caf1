"""The model card of a released checkpoint: ``README.md`` in the Hugging Face Hub's style (YAML metadata, then text).

It says what the reward model is (objective, backbone, finetuning, goal), what it was trained on (tasks, frames,
steps, validation), how to use it, and its limits, from the checkpoint's own ``config.json``.

Example:
    >>> from vlm_reward_wrappers.models.config import RewardModelConfig
    >>> card = model_card(RewardModelConfig(goal_texts={"reach-v3": "reach the goal"}), "triplet-seed0")
    >>> card.splitlines()[0], "library_name: vlm_reward_wrappers" in card
    ('---', True)
"""

from __future__ import annotations

import json

from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.version import __version__

CARD_NAME = "README.md"


def model_card(config: RewardModelConfig, name: str, repo_id: str | None = None, results: str | None = None) -> str:
    """The model card of a checkpoint named ``name`` with ``config``; its usage example loads ``repo_id`` (a Hub
    repo id, ``user/name`` or ``user/name@revision``) when the card is published there. ``results`` (markdown:
    how the model scored, and how to read it) becomes the card's "Results" section.

    Example:
        >>> card = model_card(RewardModelConfig(), "triplet", repo_id="someone/triplet-metaworld")
        >>> '"someone/triplet-metaworld")' in card
        True
    """
    training = config.training
    tasks = training.get("tasks") or sorted(config.goal_texts)
    objective = config.objective.get("name", "?")
    options = {key: value for key, value in config.objective.items() if key != "name"}
    backbone = config.backbone
    weights = backbone.pretrained if not backbone.is_local_file else "its own weights, in backbone.safetensors"
    loss = (training.get("best_validation", {}) or {}).get("validation_loss")
    run = training.get("config", {})
    rate = run.get("learning_rate") or "the finetuning mode's default"
    lines = [
        "---",
        "library_name: vlm_reward_wrappers",
        "license: mit",
        "tags: [reinforcement-learning, reward-model, vision-language, metaworld, open_clip]",
        "---",
        "",
        f"# {name}: a vision-language reward model for Meta-World",
        "",
        f"A `{objective}` reward model ({json.dumps(options) if options else 'default options'}) on the open_clip "
        f"backbone `{backbone.model}` ({weights}), finetuned with `{config.finetune.mode}`. It rewards a rendered "
        "frame by how far it shows its task done, from the goal its objective trains "
        f"(`vlm_reward_wrappers` {__version__}).",
        "",
        "## Use",
        "",
        "```python",
        "from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env",
        "",
        f'env = VLMRewardWrapper(make_metaworld_env("{tasks[0] if tasks else "reach-v3"}"), '
        f'"{repo_id or "<this folder, or its Hub repo id>"}")',
        "```",
        "",
        "## Training",
        "",
        f"- Tasks: {', '.join(tasks) if tasks else 'none recorded'}.",
        f"- Frames: Meta-World's `{config.camera}` camera at {config.image_size} px; the wrappers render them so.",
        f"- Steps: {training.get('steps', '?')} (weights of step {training.get('best_step', '?')}, the lowest "
        f"validation loss of the objective: {'n/a' if loss is None else f'{loss:.4g}'}); learning rate {rate}, "
        f"seed {run.get('seed', '?')}.",
        f"- Data: {training.get('train_episodes', '?')} training and {training.get('val_episodes', '?')} validation "
        "episodes, collected with `vlm-rewards collect`.",
        "",
        *(["## Results", "", results.strip(), ""] if results else []),
        "## Limits",
        "",
        "- Trained on simulated Meta-World frames of the tasks above only: on other tasks, cameras or image sizes its "
        "reward is untested (the wrappers warn).",
        "- A learned reward can be exploited by an agent: check it with `vlm-rewards evaluate` (the off-expert probe "
        "and its gate) before training on it, and keep a success term.",
        "- How it compares with the other objectives and with frame-free references: the package's benchmark "
        "(`vlm-rewards benchmark`).",
        "",
    ]
    return "\n".join(lines)


__all__ = ["CARD_NAME", "model_card"]
