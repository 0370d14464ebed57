"""Checkpoints: named weight arrays in an .npz file plus a JSON manifest.

A checkpoint is a folder holding `model.json` and the weights file it names
(`model-<hash>.npz`). Saving writes the new weights under a new name first, then replaces
`model.json` atomically (os.replace), and only then removes the old weights. A crash at any
moment leaves either the old manifest with its old weights or the new manifest with its new
weights: never a manifest that points at half a file. The manifest records each file's
SHA-256, so a damaged file is caught on load with a clear error.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from abcweb.model.lstm import ModelConfig, weight_shapes

MANIFEST = "model.json"
FORMAT = "abcweb-checkpoint/1"
ID_LENGTH = 12  # hex digits of a model id


def _shipped_folder() -> Path:
    """The shipped models: abcweb/weights in an installed wheel (package data), weights/ beside
    the package in a checkout."""
    package = Path(__file__).resolve().parents[1]
    installed = package / "weights"
    return installed if (installed / MANIFEST).is_file() else package.parent / "weights"


SHIPPED = _shipped_folder()


class CheckpointError(ValueError):
    """A checkpoint that is missing, damaged or does not fit its config."""


@dataclass
class Checkpoint:
    config: ModelConfig
    weights: dict[str, np.ndarray]
    info: dict = field(default_factory=dict)  # corpus, steps, metrics, training time...
    optimizer: dict[str, np.ndarray] | None = None
    path: Path | None = None
    sha256: str | None = None  # of the weights file it was loaded from (None: built in memory)

    @property
    def steps(self) -> int:
        return int(self.info.get("steps", 0))

    @property
    def total_steps(self) -> int:
        """Steps of this run plus those of the run it was fine-tuned from."""
        return self.steps + int(self.info.get("pretrained", {}).get("steps", 0))


def _fsync_write(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def save(ckpt: Checkpoint, folder: str | Path, dtype: str = "float32") -> Path:
    """Write ckpt into folder atomically. dtype='float16' halves the file (for shipping)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)

    files = {}
    arrays = {n: np.asarray(a).astype(dtype) for n, a in ckpt.weights.items()}
    groups = [("weights", arrays)]
    if ckpt.optimizer:
        groups.append(("optimizer", {n: np.asarray(a) for n, a in ckpt.optimizer.items()}))
    for kind, group in groups:
        data = _npz_bytes(group)
        digest = hashlib.sha256(data).hexdigest()
        name = f"{'model' if kind == 'weights' else 'optimizer'}-{digest[:12]}.npz"
        if not (folder / name).exists():
            _fsync_write(folder / name, data)
        files[kind] = {"file": name, "sha256": digest, "bytes": len(data)}

    manifest = {
        "format": FORMAT,
        "config": ckpt.config.to_dict(),
        "files": files,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{k: v for k, v in ckpt.info.items()
           if k not in ("format", "config", "files", "saved_at")},
    }
    _fsync_write(folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())
    # The new manifest is in place: weights it does not name (the previous save's, or a save
    # killed before its manifest was written) and temporary files of killed saves can go.
    keep = {f["file"] for f in files.values()}
    for path in folder.iterdir():
        stale_npz = (path.name.startswith(("model-", "optimizer-")) and path.suffix == ".npz"
                     and path.name not in keep)
        stale_tmp = path.name.startswith(".") and path.name.endswith(".tmp")
        if stale_npz or stale_tmp:
            path.unlink(missing_ok=True)
    ckpt.path = folder
    return folder


def update_info(folder: str | Path, **fields) -> None:
    """Set fields of a checkpoint's record (model.json) atomically; its weights and id stay."""
    folder = resolve(folder)
    manifest = _read_manifest(folder / MANIFEST)
    reserved = {"format", "config", "files", "saved_at"} & set(fields)
    if reserved:
        raise ValueError(f"update_info cannot change {', '.join(sorted(reserved))}")
    manifest.update(fields)
    _fsync_write(folder / MANIFEST, (json.dumps(manifest, indent=1) + "\n").encode())


def _read_manifest(path: Path) -> dict:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {path.parent} (missing {path.name})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"damaged checkpoint manifest {path}: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an abcweb checkpoint (format {FORMAT!r} expected)")
    return manifest


def _load_npz(folder: Path, entry: dict) -> dict[str, np.ndarray]:
    path = folder / str(entry.get("file", ""))
    try:
        data = path.read_bytes()
    except OSError:
        raise CheckpointError(f"checkpoint file missing: {path}") from None
    if hashlib.sha256(data).hexdigest() != entry.get("sha256"):
        raise CheckpointError(f"checkpoint file damaged (checksum mismatch): {path}")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {n: z[n].astype(np.float32) for n in z.files}
    except Exception as e:  # zip and format errors have many types
        raise CheckpointError(f"checkpoint file unreadable: {path}: {e}") from None


def model_id(path: str | Path | None = None) -> str:
    """A model's id: the first 12 hex digits of its weights' SHA-256 (the manifest's record,
    so no weights are read). Share links carry it."""
    folder = resolve(path)
    manifest = _read_manifest(folder / MANIFEST)
    digest = str(manifest.get("files", {}).get("weights", {}).get("sha256", ""))
    if len(digest) < ID_LENGTH:
        raise CheckpointError(f"{folder}: manifest names no weights checksum")
    return digest[:ID_LENGTH]


def shipped_models(path: str | Path | None = None) -> dict[str, Path]:
    """Id -> folder of the shipped model (first) and of every earlier shipped model, each kept
    in a subfolder named by its id, so links made with an earlier model still bring back
    their tunes. A subfolder whose id is not its name is left out."""
    folder = resolve(path)
    found = {model_id(folder): folder}
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        if sub.is_dir() and (sub / MANIFEST).exists():
            try:
                if model_id(sub) == sub.name:
                    found.setdefault(sub.name, sub)
            except CheckpointError:
                continue
    return found


def folder_for(model_id: str, path: str | Path | None = None) -> Path:
    """The folder of a shipped model by its id, as a share link names it: the current one for
    "" or an id this checkout does not have."""
    models = shipped_models(path)
    return models.get(model_id) or next(iter(models.values()))


def resolve(path: str | Path | None) -> Path:
    folder = SHIPPED if path is None else Path(path)
    return folder.parent if folder.name == MANIFEST else folder


def load(path: str | Path | None = None, optimizer: bool = False) -> Checkpoint:
    """Load a checkpoint folder (or its model.json); None means the shipped weights."""
    folder = resolve(path)
    manifest = _read_manifest(folder / MANIFEST)
    try:
        cfg = ModelConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{folder}: bad model config: {e}") from None
    files = manifest.get("files", {})
    if "weights" not in files:
        raise CheckpointError(f"{folder}: manifest names no weights file")
    weights = _load_npz(folder, files["weights"])
    expected = weight_shapes(cfg)
    for name, shape in expected.items():
        if name not in weights:
            raise CheckpointError(f"{folder}: weights lack {name!r}; they do not fit the config")
        if weights[name].shape != shape:
            raise CheckpointError(f"{folder}: {name} has shape {weights[name].shape}, the config "
                                  f"needs {shape}")
        if not np.all(np.isfinite(weights[name])):
            raise CheckpointError(f"{folder}: {name} holds NaN or infinite values")
    opt = _load_npz(folder, files["optimizer"]) if optimizer and "optimizer" in files else None
    info = {k: v for k, v in manifest.items() if k not in ("format", "config", "files")}
    return Checkpoint(cfg, weights, info, opt, folder, files["weights"]["sha256"])
