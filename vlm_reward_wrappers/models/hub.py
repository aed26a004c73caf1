"""Publishing a checkpoint on the Hugging Face Hub, in the Hub's usual style (``push_to_hub``).

What is uploaded is the checkpoint's release, as :func:`~.checkpoint.pack_checkpoint` writes it: ``config.json``,
``model.safetensors``, ``backbone.safetensors`` when the backbone has no public name, and the model card
``README.md``. Nothing else: no pickle, no trainer state (``training_state.pt`` holds optimizer state and never
leaves the machine). The published repo id is then a checkpoint wherever one is taken (``RewardModel.from_pretrained``,
the wrappers, ``vlm-rewards rl``), through the local Hub cache (:func:`~.checkpoint.resolve_checkpoint`).

Example:
    >>> from vlm_reward_wrappers.models.hub import push_to_hub
    >>> push_to_hub("runs/quick/checkpoints/triplet-seed0", "someone/triplet-metaworld")  # doctest: +SKIP
    'https://huggingface.co/someone/triplet-metaworld/commit/...'
    >>> split_revision("someone/triplet-metaworld@v1")
    ('someone/triplet-metaworld', 'v1')
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.models.card import CARD_NAME
from vlm_reward_wrappers.models.checkpoint import (
    BACKBONE_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    pack_checkpoint,
)
from vlm_reward_wrappers.version import __version__

RELEASE_FILES = frozenset({CONFIG_NAME, WEIGHTS_NAME, BACKBONE_NAME, CARD_NAME})
"""The only files a published checkpoint holds."""
DEFAULT_COMMIT_MESSAGE = f"Upload reward model (vlm_reward_wrappers {__version__})"


def split_revision(repo_id: str, revision: str | None = None) -> tuple[str, str | None]:
    """``user/name@revision`` as ``(user/name, revision)``, as checkpoints are named everywhere; a ``revision``
    given too must be the same one."""
    name, at, named = repo_id.partition("@")
    if not at:
        return repo_id, revision
    if revision is not None and revision != named:
        raise ValueError(f"repo id {repo_id!r} names revision {named!r}, but revision={revision!r} was given too")
    return name, named


def push_to_hub(
    checkpoint: str | os.PathLike,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    commit_message: str | None = None,
    token: str | None = None,
) -> str:
    """Publish the checkpoint folder ``checkpoint`` on the Hugging Face Hub as ``repo_id``; return the commit's URL.

    The folder's release (:func:`~.checkpoint.pack_checkpoint`, with a model card whose usage example names
    ``repo_id``) is written to a temporary folder, checked to hold only :data:`RELEASE_FILES`, and uploaded in one
    commit with ``HfApi.upload_folder``. The repo is created if it does not exist (``private`` applies then; by
    default the Hub's default visibility). ``revision`` is the branch to commit to, created from ``main`` if
    needed (default: ``main``); ``user/name@branch`` says the same. ``token`` defaults to the one ``hf auth
    login`` saved. The folder itself is never changed, and may be a training checkpoint (its trainer state stays
    here) or a Hub repo id already in the local cache.

    Raises:
        CheckpointError: ``checkpoint`` is not a complete checkpoint (named, with the problem).
        huggingface_hub.errors.HfHubHTTPError: the Hub refused (no token, no write access, offline).

    Example:
        >>> push_to_hub("runs/quick/checkpoints/triplet-seed0", "someone/triplet", private=True)  # doctest: +SKIP
        'https://huggingface.co/someone/triplet/commit/0a1b2c...'
        >>> push_to_hub("runs/quick/checkpoints/triplet-seed0", "someone/triplet@v1")  # doctest: +SKIP
        'https://huggingface.co/someone/triplet/commit/3d4e5f...'
    """
    from huggingface_hub import HfApi

    repo_id, revision = split_revision(repo_id, revision)
    published_as = f"{repo_id}@{revision}" if revision else repo_id
    with tempfile.TemporaryDirectory(prefix="vlm-rewards-release-") as staging:
        # The release folder's name titles its model card: the repo's name.
        release = pack_checkpoint(checkpoint, Path(staging) / repo_id.split("/")[-1], repo_id=published_as)
        unexpected = sorted(item.name for item in release.iterdir() if item.name not in RELEASE_FILES)
        if unexpected:  # pack_checkpoint writes none: a guard, since what is uploaded is public for good
            raise CheckpointError(f"the release of {checkpoint} holds files that are never published: {unexpected}")
        api = HfApi()
        options: dict[str, Any] = {} if private is None else {"private": private}
        repo_id = api.create_repo(repo_id, token=token, exist_ok=True, **options).repo_id
        if revision is not None:
            api.create_branch(repo_id, branch=revision, token=token, exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=release,
            commit_message=commit_message or DEFAULT_COMMIT_MESSAGE,
            revision=revision,
            token=token,
        )
    return str(commit)


__all__ = ["RELEASE_FILES", "push_to_hub", "split_revision"]
