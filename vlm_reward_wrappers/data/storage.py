"""The on-disk demonstration dataset: one HDF5 file per episode plus a manifest.

Layout of a dataset folder::

    DIR/dataset.json                      manifest: format version, camera, image size,
                                          and every collection config that added episodes
    DIR/episodes/<task>/<collection>-<index>.h5

Why HDF5, one file per episode:

* **Nothing is lost on a crash.** An episode is written to a temporary file and
  renamed into place only when complete, so a collection killed at any moment
  leaves only whole episodes; re-running skips the episodes that exist. A single
  big HDF5 file would be corrupted as a whole by a kill mid-write.
* **Lazy and chunked.** Frames are stored in compressed (lzf) chunks of a few
  frames; :class:`DemoDataset` reads only the per-step scalars up front and
  reads frames on demand, so a 45-task dataset never has to fit in memory.
* **Appendable and self-describing.** New collections add files and record
  their config in the manifest; every file carries its own metadata (task, goal
  text, seed, noise, camera, size), readable with any HDF5 tool.
* **A corrupt file is named.** Any read error is raised with the file's path.

Example:
    >>> dataset = DemoDataset("data/quick")            # doctest: +SKIP
    >>> episode = dataset.episodes[0]                  # doctest: +SKIP
    >>> frames = dataset.read_frames(0, [0, 5, 10])    # (3, H, W, 3) uint8  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import h5py
import numpy as np

from vlm_reward_wrappers.io_utils import CorruptFileError, atomic_path, read_versioned_json, write_json_atomic
from vlm_reward_wrappers.version import __version__

DATASET_FORMAT = "vlm-reward-wrappers/demonstrations"
FORMAT_VERSION = 1
MANIFEST_NAME = "dataset.json"
EPISODES_DIR = "episodes"
_FRAME_CHUNK = 8
_MAX_OPEN_FILES = 32

OutputMode = Literal["resume", "append", "overwrite"]
"""What a collection does with a dataset folder that holds another config: see :func:`prepare_output`."""


class DatasetConfigMismatchError(ValueError):
    """An output folder holds a dataset collected with another config."""


def config_id(config: dict[str, Any]) -> str:
    """A short stable hash of a collection config (names its episode files)."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    return hashlib.sha1(canonical.encode()).hexdigest()[:10]


@dataclass
class EpisodeRecord:
    """One collected episode, in memory, before it is written.

    Step ``t`` holds the frame rendered after action ``t`` and Meta-World's
    reward and success flag for that same state.
    """

    task: str
    goal_text: str
    seed: int
    camera: str
    image_size: int
    noise_std: float
    kind: str  # "expert" or "random" (data.config.EpisodeKind)
    frames: np.ndarray  # (T, H, W, 3) uint8
    actions: np.ndarray  # (T, action_dim) float32
    gt_reward: np.ndarray  # (T,) float32
    success: np.ndarray  # (T,) bool

    @property
    def num_steps(self) -> int:
        return len(self.gt_reward)

    @property
    def first_success_step(self) -> int:
        """Index of the first successful step, or -1 if the episode never succeeded."""
        hits = np.flatnonzero(self.success)
        return int(hits[0]) if len(hits) else -1


@dataclass(frozen=True)
class EpisodeInfo:
    """Metadata and per-step scalars of a stored episode (frames stay on disk)."""

    path: Path
    task: str
    goal_text: str
    seed: int
    kind: str
    noise_std: float
    collection: str
    index: int
    first_success_step: int
    gt_reward: np.ndarray = field(repr=False)
    success: np.ndarray = field(repr=False)

    @property
    def num_steps(self) -> int:
        return len(self.gt_reward)

    @property
    def is_successful_expert(self) -> bool:
        """An expert episode that reached success (used for progress metrics)."""
        return self.kind == "expert" and self.first_success_step >= 0


def episode_path(root: str | os.PathLike, task: str, collection: str, index: int) -> Path:
    """Where episode ``index`` of ``task`` in a collection is stored."""
    return Path(root) / EPISODES_DIR / task / f"{collection}-{index:05d}.h5"


def write_episode(path: str | os.PathLike, record: EpisodeRecord, *, collection: str, index: int) -> None:
    """Write one episode atomically (temporary file, then rename).

    The HDF5 file is built in memory and written with plain file I/O: a full disk is then an ``OSError`` that
    leaves the episodes already written whole (HDF5 writing to a full disk itself can crash the process).
    """
    frames = np.ascontiguousarray(record.frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) != record.num_steps:
        raise ValueError(f"frames must be (T, H, W, 3) with T={record.num_steps}, got {frames.shape}")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        chunk = (min(_FRAME_CHUNK, len(frames)), *frames.shape[1:])
        h5.create_dataset("frames", data=frames, chunks=chunk, compression="lzf")
        h5.create_dataset("actions", data=np.asarray(record.actions, dtype=np.float32))
        h5.create_dataset("gt_reward", data=np.asarray(record.gt_reward, dtype=np.float32))
        h5.create_dataset("success", data=np.asarray(record.success, dtype=bool))
        h5.create_dataset("step", data=np.arange(record.num_steps, dtype=np.int32))
        attributes = {
            "task": record.task,
            "goal_text": record.goal_text,
            "seed": int(record.seed),
            "camera": record.camera,
            "image_size": int(record.image_size),
            "noise_std": float(record.noise_std),
            "kind": record.kind,
            "first_success_step": record.first_success_step,
            "collection": collection,
            "index": int(index),
            "format_version": FORMAT_VERSION,
        }
        h5.attrs.update(attributes)
    with atomic_path(path, suffix=".h5") as temporary:
        temporary.write_bytes(buffer.getbuffer())


def read_episode_info(path: str | os.PathLike) -> EpisodeInfo:
    """Read an episode's metadata and scalars; a damaged file raises :class:`CorruptFileError` naming it."""
    path = Path(path)
    try:
        with h5py.File(path, "r") as h5:
            attrs = h5.attrs
            gt_reward = h5["gt_reward"][()]
            success = h5["success"][()]
            frames_shape = h5["frames"].shape
            info = EpisodeInfo(
                path=path,
                task=str(attrs["task"]),
                goal_text=str(attrs["goal_text"]),
                seed=int(attrs["seed"]),
                kind=str(attrs["kind"]),
                noise_std=float(attrs["noise_std"]),
                collection=str(attrs["collection"]),
                index=int(attrs["index"]),
                first_success_step=int(attrs["first_success_step"]),
                gt_reward=gt_reward,
                success=success,
            )
    except (OSError, KeyError, ValueError) as error:
        raise CorruptFileError(
            f"episode file {path} cannot be read ({error}). Delete it and re-run the same "
            "`vlm-rewards collect` command to collect that episode again."
        ) from error
    if frames_shape[0] != len(gt_reward) or len(success) != len(gt_reward):
        raise CorruptFileError(f"episode file {path} has {frames_shape[0]} frames but {len(gt_reward)} rewards.")
    return info


def read_manifest(root: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a dataset folder, checked for format and version."""
    manifest_path = Path(root) / MANIFEST_NAME
    if not manifest_path.exists():
        raise FileNotFoundError(
            f"{root} is not a dataset folder (no {MANIFEST_NAME}). Make one with "
            "`vlm-rewards collect --tasks reach-v3 --episodes 4 --out DIR`."
        )
    return read_versioned_json(
        manifest_path,
        file_format=DATASET_FORMAT,
        version=FORMAT_VERSION,
        what="a vlm_reward_wrappers dataset manifest",
        version_key="version",
    )


def prepare_output(root: str | os.PathLike, config: dict[str, Any], *, mode: OutputMode = "resume") -> dict[str, Any]:
    """Make ``root`` ready to receive episodes of ``config`` and return its manifest.

    Args:
        root: the dataset folder.
        config: the collection config (JSON-serialisable; must hold ``camera``
            and ``image_size``).
        mode: ``"resume"`` (default: the folder must be empty or hold this same
            config), ``"append"`` (add this config to a dataset of the same camera
            and image size), or ``"overwrite"`` (delete the dataset there first).
    """
    if mode not in get_args(OutputMode):
        raise ValueError(f"mode must be one of {', '.join(get_args(OutputMode))}; got {mode!r}")
    root = Path(root)
    manifest_path = root / MANIFEST_NAME
    if root.exists() and not manifest_path.exists() and any(root.iterdir()):
        raise DatasetConfigMismatchError(
            f"{root} is not empty and holds no dataset; choose an empty or new folder for --out."
        )
    if manifest_path.exists() and mode == "overwrite":
        _delete_dataset(root)
    elif manifest_path.exists():
        manifest = read_manifest(root)
        if config in manifest["collections"]:
            return manifest
        if mode == "append":
            for key in ("camera", "image_size"):
                if manifest[key] != config[key]:
                    raise DatasetConfigMismatchError(
                        f"cannot append to {root}: it holds {key}={manifest[key]!r} frames, this collection "
                        f"asks for {key}={config[key]!r}. Frames of one dataset share camera and size."
                    )
            manifest["collections"].append(config)
            write_json_atomic(manifest_path, manifest)
            return manifest
        else:
            previous = manifest["collections"][-1]
            changed = sorted(k for k in set(previous) | set(config) if previous.get(k) != config.get(k))
            raise DatasetConfigMismatchError(
                f"{root} already holds a dataset collected with another config (differs in: "
                f"{', '.join(changed)}). Re-run with the same arguments to resume it, pass --mode append "
                "(mode='append') to add this collection to it, --mode overwrite to replace it, or choose another --out."
            )
    manifest = {
        "format": DATASET_FORMAT,
        "version": FORMAT_VERSION,
        "camera": config["camera"],
        "image_size": config["image_size"],
        "collections": [config],
        "package_version": __version__,
    }
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomic(manifest_path, manifest)
    return manifest


def _delete_dataset(root: Path) -> None:
    import shutil

    shutil.rmtree(root / EPISODES_DIR, ignore_errors=True)
    (root / MANIFEST_NAME).unlink(missing_ok=True)


def _check_inside(root: Path, paths: Sequence[Path]) -> None:
    """Refuse episode files that are links out of the dataset folder (a folder may come from anyone)."""
    inside = root.resolve()
    for path in paths:
        if not path.resolve().is_relative_to(inside):
            raise CorruptFileError(
                f"episode file {path} is a link to {path.resolve()}, outside the dataset folder {root}; a dataset "
                "holds its own files only. Replace the link by the file, or delete it."
            )


def _warn_missing(root: Path, manifest: dict[str, Any], paths: Sequence[Path]) -> None:
    """Warn, with the count, when episode files of the manifest's collections are not on disk."""
    present = {path.relative_to(root) for path in paths}
    expected = {
        episode_path(".", task, config_id(collection), index)
        for collection in manifest["collections"]
        for task in collection.get("tasks", ())
        for index in range(int(collection.get("episodes_per_task", 0)))
    }
    missing = len(expected - present)
    if missing:
        warnings.warn(
            f"{root}: {missing} of the {len(expected)} episode files its manifest lists are missing (a collection "
            "that was interrupted, or files deleted); the dataset is read without them. Re-run the same "
            "`vlm-rewards collect` command to collect them.",
            stacklevel=3,
        )


@dataclass(frozen=True)
class FrameBatch:
    """A batch of frames with the ground truth of each frame."""

    frames: np.ndarray  # (B, H, W, 3) uint8
    episode: np.ndarray  # (B,) int, index into DemoDataset.episodes
    step: np.ndarray  # (B,) int
    gt_reward: np.ndarray  # (B,) float32
    success: np.ndarray  # (B,) bool


class DemoDataset:
    """A lazily loaded demonstration dataset folder.

    Opening it reads the manifest and each episode's scalars (rewards, success
    flags, metadata); frames are read from disk only when asked for.

    Args:
        root: the dataset folder written by :func:`~vlm_reward_wrappers.data.collect`.
        tasks: keep only episodes of these tasks.

    Example:
        >>> ds = DemoDataset("data/quick", tasks=["reach-v3"])   # doctest: +SKIP
        >>> for batch in ds.iter_frame_batches(64):              # doctest: +SKIP
        ...     print(batch.frames.shape, batch.gt_reward[:3])
    """

    def __init__(self, root: str | os.PathLike, tasks: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        self.manifest = read_manifest(self.root)
        self.camera: str = self.manifest["camera"]
        self.image_size: int = int(self.manifest["image_size"])
        paths = sorted((self.root / EPISODES_DIR).glob("*/*.h5"))
        _check_inside(self.root, paths)
        _warn_missing(self.root, self.manifest, paths)
        if tasks is not None:
            wanted = set(tasks)
            paths = [p for p in paths if p.parent.name in wanted]
        self.episodes: list[EpisodeInfo] = [read_episode_info(p) for p in paths]
        self._open: OrderedDict[Path, h5py.File] = OrderedDict()

    @property
    def collections(self) -> list[dict[str, Any]]:
        """The collection configs that wrote this dataset."""
        return list(self.manifest["collections"])

    @property
    def tasks(self) -> list[str]:
        """Tasks present, in order of first appearance."""
        return list(dict.fromkeys(e.task for e in self.episodes))

    @property
    def num_frames(self) -> int:
        return sum(e.num_steps for e in self.episodes)

    def __len__(self) -> int:
        return len(self.episodes)

    def fingerprint(self) -> str:
        """What a training run on this data must find again to resume: every episode's place in the folder and
        its length (the folder itself may move). Adding, removing or re-recording an episode changes it."""
        digest = hashlib.sha256()
        for info in self.episodes:
            digest.update(f"{info.path.relative_to(self.root).as_posix()}:{info.num_steps}\n".encode())
        return digest.hexdigest()[:16]

    def __repr__(self) -> str:
        return (
            f"DemoDataset({str(self.root)!r}: {len(self)} episodes, {self.num_frames} frames, "
            f"{len(self.tasks)} tasks, camera={self.camera!r}, image_size={self.image_size})"
        )

    def _file(self, path: Path) -> h5py.File:
        handle = self._open.pop(path, None)
        if handle is None:
            try:
                handle = h5py.File(path, "r")
            except OSError as error:
                raise CorruptFileError(f"episode file {path} cannot be opened ({error}).") from error
            if len(self._open) >= _MAX_OPEN_FILES:
                _, oldest = self._open.popitem(last=False)
                oldest.close()
        self._open[path] = handle
        return handle

    def read_frames(self, episode: int, steps: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """Frames of one episode: all of them, or those at ``steps`` (any order, repeats allowed)."""
        info = self.episodes[episode]
        frames = self._file(info.path)["frames"]
        try:
            if steps is None:
                return frames[()]
            steps = np.asarray(steps, dtype=np.int64)
            unique, inverse = np.unique(steps, return_inverse=True)
            return frames[unique][inverse]
        except (OSError, ValueError) as error:
            raise CorruptFileError(f"frames of episode file {info.path} cannot be read ({error}).") from error

    def iter_frame_batches(
        self, batch_size: int, episodes: Sequence[int] | None = None, *, with_frames: bool = True
    ) -> Iterator[FrameBatch]:
        """Every frame of the chosen episodes in order, in batches of ``batch_size``.

        ``with_frames=False`` reads no image: the batches' ``frames`` are empty ``(B, 0, 0, 3)`` arrays, for a
        caller that only needs which frames they are (features cached elsewhere) and their ground truth.
        """
        selected = range(len(self.episodes)) if episodes is None else episodes
        pending: list[tuple[np.ndarray, int, EpisodeInfo, int]] = []
        pending_count = 0
        for index in selected:
            info = self.episodes[index]
            frames = self.read_frames(index) if with_frames else np.empty((info.num_steps, 0, 0, 3), np.uint8)
            start = 0
            while start < len(frames):
                take = min(batch_size - pending_count, len(frames) - start)
                pending.append((frames[start : start + take], index, info, start))
                pending_count += take
                start += take
                if pending_count == batch_size:
                    yield _assemble(pending)
                    pending, pending_count = [], 0
        if pending:
            yield _assemble(pending)

    def close(self) -> None:
        """Close the open episode files."""
        while self._open:
            _, handle = self._open.popitem()
            handle.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def _assemble(parts: list[tuple[np.ndarray, int, EpisodeInfo, int]]) -> FrameBatch:
    frames, episodes, steps, rewards, successes = [], [], [], [], []
    for chunk, index, info, start in parts:
        count = len(chunk)
        frames.append(chunk)
        episodes.append(np.full(count, index))
        steps.append(np.arange(start, start + count))
        rewards.append(info.gt_reward[start : start + count])
        successes.append(info.success[start : start + count])
    return FrameBatch(
        frames=np.concatenate(frames),
        episode=np.concatenate(episodes),
        step=np.concatenate(steps),
        gt_reward=np.concatenate(rewards).astype(np.float32),
        success=np.concatenate(successes),
    )
