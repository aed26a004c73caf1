"""RewardModel: a backbone, its adapter and an objective's reward, saved as a checkpoint folder.

The folder format is :mod:`.checkpoint`'s; the config is :class:`~.config.RewardModelConfig`.
``model.safetensors`` holds only the tensors not in the named backbone (LoRA
factors, heads, temperature; everything for full finetuning or a backbone
without named weights).

Example:
    >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet-seed0")      # doctest: +SKIP
    >>> model.reward(frames, "open the door")                                         # doctest: +SKIP
    array([0.12, 0.31, ...], dtype=float32)
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from vlm_reward_wrappers.models.adapters import apply_finetuning
from vlm_reward_wrappers.models.backbone import Backbone, file_sha256, load_backbone
from vlm_reward_wrappers.models.card import CARD_NAME
from vlm_reward_wrappers.models.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    card_writer,
    read_config_file,
    read_while_saving,
    write_checkpoint,
)
from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.models.demonstration import DemonstrationGoal
from vlm_reward_wrappers.objectives import Objective, objective_from_config

Goal = str | torch.Tensor | DemonstrationGoal
"""A goal sentence, a goal-image embedding ``(D,)``, or demonstrations of the task (:class:`DemonstrationGoal`)."""


class GoalUnavailableError(ValueError):
    """A goal image was asked for a task the checkpoint holds none for."""


class CalibrationError(ValueError):
    """The ``progress`` reward was asked for a goal the checkpoint holds no calibration for."""


class RewardModel(nn.Module):
    """Scores frames against a goal, a sentence or a goal image, with a (finetuned) vision-language backbone.

    Each objective trains a reward for one kind of goal (``objective.goal_kind``):
    the sentence reward is the cosine (or VLM-RM projection) of frame and sentence
    embeddings; the goal-image reward is the cosine of frame and goal-image
    embeddings. The checkpoint stores a goal-image embedding per training task.

    Args:
        config: backbone, adapter, objective and metadata.
        backbone: an already loaded backbone of ``config.backbone`` (loaded if omitted).
    """

    goal_images: torch.Tensor | None

    def __init__(self, config: RewardModelConfig, backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_backbone(config.backbone)
        self.heads = apply_finetuning(self.backbone, config.finetune)
        self.objective: Objective = objective_from_config(config.objective)
        self._text_cache: dict[str, torch.Tensor] = {}
        self._frozen_text: dict[str, torch.Tensor] = {}
        tasks = config.goal_image_tasks
        self.register_buffer("goal_images", torch.zeros(len(tasks), self.backbone.embed_dim) if tasks else None)

    @property
    def device(self) -> torch.device:
        return self.backbone.pixel_mean.device

    def backbone_image_features(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Image embeddings before the head (what a frozen backbone lets one cache)."""
        return self.backbone.encode_images(frames)

    def image_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.heads["image"](features) if "image" in self.heads else features

    def encode_images(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Unnormalised image embeddings ``(B, D)`` of uint8 frames ``(B, H, W, 3)``."""
        return self.image_head(self.backbone_image_features(frames))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised text embeddings ``(B, D)``."""
        if self.config.finetune.mode in ("heads", "frozen"):
            features = self._frozen_text_features(list(texts))
        else:
            features = self.backbone.encode_text(list(texts))
        return self.heads["text"](features) if "text" in self.heads else features

    def _frozen_text_features(self, texts: list[str]) -> torch.Tensor:
        """A frozen text tower gives a sentence the same features in every call: each one is encoded once.

        Training steps draw their sentences from a few per task, so this skips the text tower on almost every step.
        Each sentence is encoded alone: in a batch its features would depend, in the last bits, on the sentences
        it came with, and a resumed run, which meets its sentences in other batches, would not repeat the run.
        """
        missing = [text for text in dict.fromkeys(texts) if text not in self._frozen_text]
        with torch.no_grad():
            for text in missing:
                self._frozen_text[text] = self.backbone.encode_text([text])[0]
        return torch.stack([self._frozen_text[text] for text in texts]).to(self.device)

    def goal_embedding(self, goal: str) -> torch.Tensor:
        """Text embedding of a goal sentence, computed once per sentence and cached (eval only)."""
        if not goal or not goal.strip():
            raise ValueError("the goal text is empty; pass a sentence such as 'open the door'")
        if self.training:
            return self.encode_text([goal])[0]
        if goal not in self._text_cache:
            with torch.no_grad():
                self._text_cache[goal] = self.encode_text([goal])[0]
        return self._text_cache[goal]

    def train(self, mode: bool = True) -> RewardModel:
        if mode:
            self._text_cache.clear()  # weights change while training
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._text_cache.clear()
        self._frozen_text.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def reward_from_features(self, image_features: torch.Tensor, goal: Goal) -> torch.Tensor:
        """Rewards of image embeddings (from :meth:`encode_images`) for one goal: a sentence, a goal image or
        demonstrations."""
        if isinstance(goal, DemonstrationGoal):
            return goal.rewards(image_features)
        if not isinstance(goal, str):
            goal = torch.as_tensor(goal, dtype=image_features.dtype, device=image_features.device)
            return nn.functional.normalize(image_features, dim=-1) @ nn.functional.normalize(goal, dim=-1)
        baseline = self.goal_embedding(self.config.baseline_text) if self.objective.uses_baseline else None
        return self.objective.reward(image_features, self.goal_embedding(goal), baseline)

    @torch.no_grad()
    def embed_goal_frames(self, frames: torch.Tensor | np.ndarray, batch_size: int = 256) -> torch.Tensor:
        """A goal-image embedding ``(D,)`` from one or more goal frames: the mean of their normalised embeddings."""
        was_training = self.training
        self.eval()
        try:
            embeddings = nn.functional.normalize(in_batches(self.encode_images, frames, batch_size), dim=-1)
        finally:
            self.train(was_training)
        return nn.functional.normalize(embeddings.mean(dim=0), dim=-1)

    def set_goal_images(self, embeddings: Mapping[str, torch.Tensor]) -> None:
        """Store a goal-image embedding per task (they are saved with the checkpoint)."""
        tasks = sorted(embeddings)
        self.config.goal_image_tasks = tasks
        stacked = torch.stack([nn.functional.normalize(embeddings[task], dim=-1) for task in tasks]) if tasks else None
        self.goal_images = stacked.to(self.device) if stacked is not None else None

    def goal_image(self, task: str) -> torch.Tensor:
        """The stored goal-image embedding of a training task."""
        tasks = self.config.goal_image_tasks
        if task not in tasks or self.goal_images is None:
            stored = ", ".join(tasks) or "none"
            raise GoalUnavailableError(
                f"this checkpoint trains a goal-image reward but holds no goal image for {task} (it holds one for: "
                f"{stored}). Pass goal_image= (a goal frame, several, or an image file of the task done)."
            )
        return self.goal_images[tasks.index(task)]

    def native_goal(self, task: str) -> Goal:
        """The goal of ``task`` the objective trains its reward for: the stored goal image or the sentence."""
        return self.goal_image(task) if self.objective.goal_kind == "image" else self.config.goal_for(task)

    def reward_stats_for(self, goal: Goal | np.ndarray) -> dict[str, float]:
        """Mean and std of the model's rewards on its training frames for this kind of goal (demonstrations: on
        their own frames)."""
        if isinstance(goal, DemonstrationGoal):
            return goal.reward_stats
        return self.config.reward_stats if isinstance(goal, str) else self.config.image_reward_stats

    def progress_range(self, task: str | None, goal: Goal | np.ndarray) -> tuple[float, float]:
        """The scores ``(zero, one)`` that the ``progress`` reward maps to 0 and 1 for ``task``'s own goal.

        Raises :class:`CalibrationError` saying what to do when the checkpoint holds none for this task and
        goal (a checkpoint written before calibration existed, a task it never trained on, a goal sentence or
        image other than the task's own, demonstrations), or when its calibration is degenerate (success
        frames do not score above first frames).
        """
        calibration = self.config.progress_calibration
        advice = "use reward_mode='normalized' (or 'raw') for this goal"
        if not calibration:
            raise CalibrationError(
                "this checkpoint holds no progress calibration (it was written before reward_mode='progress' "
                f"existed): train it again with this version, or {advice}."
            )
        if task is None or isinstance(goal, DemonstrationGoal):
            raise CalibrationError(
                f"reward_mode='progress' is calibrated for Meta-World training tasks only; {advice}."
            )
        kind = "sentence" if isinstance(goal, str) else "image"
        stored = calibration.get(kind, {})
        if task not in stored:
            raise CalibrationError(
                f"this checkpoint has no progress calibration for {task} with a {kind} goal (it has one for: "
                f"{', '.join(sorted(stored)) or 'none'}); {advice}."
            )
        if isinstance(goal, str):
            same = goal == self.config.goal_for(task)
        else:
            same = torch.allclose(torch.as_tensor(goal).float().cpu(), self.goal_image(task).float().cpu(), atol=1e-6)
        if not same:
            raise CalibrationError(
                f"reward_mode='progress' is calibrated for {task}'s own goal, not for another {kind}; {advice}."
            )
        zero, one = stored[task]
        if not one > zero:
            raise CalibrationError(
                f"on {task} this checkpoint scores success frames no higher than first frames (95th percentile "
                f"{one:.4g} <= 5th percentile {zero:.4g}): its progress would mean nothing; {advice}, or another "
                "checkpoint."
            )
        return float(zero), float(one)

    def rewards_for_goals(self, image_features: torch.Tensor, goals: Sequence[str] | np.ndarray) -> np.ndarray:
        """Rewards of image embeddings, each against its own goal sentence (one text embedding per distinct goal)."""
        goals = np.asarray(goals)
        rewards = np.zeros(len(goals), dtype=np.float32)
        for goal in np.unique(goals):
            where = np.flatnonzero(goals == goal)
            rewards[where] = self.reward_from_features(image_features[where], str(goal)).float().cpu().numpy()
        return rewards

    @torch.no_grad()
    def reward(
        self, frames: torch.Tensor | np.ndarray, goal: Goal, *, normalize: bool = False, batch_size: int = 256
    ) -> np.ndarray:
        """Rewards ``(B,)`` of uint8 frames ``(B, H, W, 3)`` for a goal sentence or goal-image embedding.

        ``normalize=True`` standardises with the mean and std of the rewards
        the model gave on its training data for that kind of goal.
        """
        was_training = self.training
        self.eval()
        try:
            rewards = (
                self.reward_from_features(in_batches(self.encode_images, frames, batch_size), goal)
                if len(frames)
                else torch.zeros(0)
            )
        finally:
            self.train(was_training)
        values = rewards.float().cpu().numpy()
        if normalize:
            stats = self.reward_stats_for(goal)
            values = (values - stats["mean"]) / max(stats["std"], 1e-8)
        return values

    # ----------------------------------------------------------- persistence

    def names_to_save(self) -> set[str]:
        """Names of the tensors that are not in the named backbone's weights (and the goal images)."""
        state_names = set(self.state_dict(keep_vars=True))
        if self.config.finetune.mode == "full" or self.config.backbone.pretrained is None:
            return state_names
        trained = {name for name, parameter in self.named_parameters() if parameter.requires_grad}
        return (trained | {"goal_images"}) & state_names

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        """Copies, on the CPU, of the tensors :meth:`names_to_save` names."""
        names = self.names_to_save()
        # Copies: tensors that share memory with the parameters would follow later optimizer steps.
        return {
            name: tensor.detach().to("cpu", copy=True).contiguous()
            for name, tensor in self.state_dict().items()
            if name in names
        }

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint folder atomically, with its model card (``README.md``); return its path.

        The folder holds the config, the safetensors weights and the card only (no pickle).
        """
        card = {CARD_NAME: card_writer(self.config, Path(path).resolve().name)}
        return write_checkpoint(path, self.config, self.weights_to_save(), card)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        revision: str | None = None,
        private: bool | None = None,
        commit_message: str | None = None,
        token: str | None = None,
    ) -> str:
        """Publish the model on the Hugging Face Hub as ``repo_id``; return the commit's URL.

        A release of the model (config, safetensors weights, model card; no pickle) is written to a temporary
        folder and uploaded by :func:`~vlm_reward_wrappers.models.hub.push_to_hub`, which says more: the repo
        is created if needed (``private`` when created), the upload goes to branch ``revision`` (default
        ``main``), ``token`` defaults to the one ``hf auth login`` saved. Load it back with
        ``RewardModel.from_pretrained(repo_id)`` wherever a checkpoint is taken.

        Example:
            >>> model.push_to_hub("someone/triplet-metaworld", private=True)  # doctest: +SKIP
            'https://huggingface.co/someone/triplet-metaworld/commit/...'
        """
        from vlm_reward_wrappers.models.hub import push_to_hub

        with tempfile.TemporaryDirectory(prefix="vlm-rewards-push-") as staging:
            folder = self.save_pretrained(Path(staging) / "checkpoint")
            return push_to_hub(
                folder, repo_id, revision=revision, private=private, commit_message=commit_message, token=token
            )

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", *, revision: str | None = None
    ) -> RewardModel:
        """Load a checkpoint folder written by :meth:`save_pretrained`, or a Hub repo id from the local Hub cache
        (at ``revision``: a branch, tag or commit; ``user/name@revision`` says the same wherever a checkpoint is
        taken).

        The folder is complete: copied or renamed, on another machine or with an
        empty cache, it loads the same model. Raises :class:`CheckpointError`
        naming the file when the folder is missing, truncated, incomplete, of an
        unknown format version, or its backbone cannot be loaded. Never returns
        a silently random model.

        Example:
            >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet-seed0")  # doctest: +SKIP
            >>> model = RewardModel.from_pretrained("user/triplet-metaworld")          # doctest: +SKIP
            >>> model = RewardModel.from_pretrained("user/triplet-metaworld", revision="v1")  # doctest: +SKIP
        """
        if revision is not None:
            path = f"{path}@{revision}"
        return read_while_saving(path, lambda folder: cls._load(folder, device))

    @classmethod
    def _load(cls, folder: Path, device: str | torch.device) -> RewardModel:
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        config, weights_sha256 = read_config_file(folder)
        if not weights_path.is_file():
            raise CheckpointError(f"checkpoint weights {weights_path} are missing.")
        if file_sha256(weights_path) != weights_sha256:
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not match the checksum in {config_path} (truncated or changed)."
            )
        try:
            backbone = load_backbone(config.backbone, device=device)
        except Exception as error:
            raise CheckpointError(f"checkpoint {folder}: its backbone cannot be loaded: {error}") from error
        model = cls(config, backbone).to(device)
        try:
            saved = load_file(str(weights_path), device=str(device))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"checkpoint weights {weights_path} cannot be read: {error}") from error
        expected = model.names_to_save()
        if set(saved) != expected:
            missing, unexpected = sorted(expected - set(saved))[:3], sorted(set(saved) - expected)[:3]
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not fit the model (missing {missing}, unexpected {unexpected})."
            )
        try:
            model.load_state_dict(saved, strict=False)
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not fit the model described by {config_path}: {error}"
            ) from error
        model.eval()
        return model


def in_batches(
    encode: Callable[[Any], torch.Tensor], frames: torch.Tensor | np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """``encode`` applied to ``frames`` ``batch_size`` at a time, results concatenated."""
    return torch.cat([encode(frames[start : start + batch_size]) for start in range(0, len(frames), batch_size)])
