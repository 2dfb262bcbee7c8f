"""Resolve a pretrained source to local files: a folder, a ``.safetensors`` file or a Hub repo.

Sources (as in timm / open_clip):

* ``"hf-hub:org/repo"`` or ``"hf-hub:org/repo@<revision>"`` (``hf_hub:`` is an alias; a bare
  ``"org/repo"`` that is not an existing path also means the Hub);
* ``"local-dir:/path/to/folder"``;
* a folder holding ``config.json`` + ``model.safetensors``, or a ``.safetensors`` file.

Hub files go through ``huggingface_hub.hf_hub_download`` and its cache
(``models--org--repo/{blobs,snapshots/<rev>,refs/main}``). With ``HF_HUB_OFFLINE=1`` (read at
call time, ``TRANSFORMERS_OFFLINE`` too) or ``local_files_only=True`` nothing touches the network:
a cached repo loads, a missing one fails at once with a message saying how to get it. When a
sha256 is pinned the weights file is hashed and compared before it is used. Legacy pickles
(``.pt``/``.ckpt``...) are refused with a pointer to ``avperceive convert``.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import CheckpointError
from .convert import LEGACY_SUFFIXES

__all__ = [
    "ResolvedCheckpoint",
    "HubSource",
    "parse_hub_source",
    "resolve_checkpoint",
    "resolve_pretrained",
    "is_offline",
    "sha256_file",
    "verify_sha256",
    "CONFIG_NAME",
    "WEIGHTS_NAME",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

_HUB_PREFIXES = ("hf-hub:", "hf_hub:")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class ResolvedCheckpoint:
    """Local files of a checkpoint.

    Attributes:
        weights: the ``.safetensors`` file.
        config: its ``config.json`` (``None`` for a bare ``.safetensors`` file).
        source: the source as the user wrote it (for messages).
        revision: the Hub commit the files come from (Hub sources only).
    """

    weights: Path
    config: Path | None
    source: str
    revision: str | None = None

    @property
    def label(self) -> str:
        """Where the weights come from, for records: ``"hf-hub:<repo>@<revision>"`` or ``"local-dir:<path>"``."""
        if self.revision is not None:
            hub = parse_hub_source(self.source)
            if hub is not None:
                return f"hf-hub:{hub.repo_id}@{self.revision}"
        return f"local-dir:{self.weights.parent if self.config is not None else self.weights}"


@dataclass(frozen=True)
class HubSource:
    """A parsed ``hf-hub:org/repo[@revision]``."""

    repo_id: str
    revision: str | None = None

    def __str__(self) -> str:
        return f"hf-hub:{self.repo_id}" + (f"@{self.revision}" if self.revision else "")


def is_offline() -> bool:
    """``True`` when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) is set to a true value now."""
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().upper() in ("1", "ON", "YES", "TRUE"):
            return True
    return False


def parse_hub_source(source: str) -> HubSource | None:
    """The :class:`HubSource` of ``source``, or ``None`` when it is not a Hub reference.

    ``"hf-hub:org/repo@rev"`` always is; a bare ``"org/repo[@rev]"`` is when no such path exists.
    """
    explicit = source.startswith(_HUB_PREFIXES)
    body = source.split(":", 1)[1] if explicit else source
    repo, _, revision = body.partition("@")
    if not explicit and (Path(source).expanduser().exists() or not _REPO_RE.match(repo)):
        return None
    if not _REPO_RE.match(repo):
        raise CheckpointError(f"{source}: not a Hub repo id (expected hf-hub:org/name[@revision])")
    return HubSource(repo, revision or None)


def sha256_file(path: str | Path, *, chunk: int = 1 << 22) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_sha256(path: str | Path, expected: str) -> None:
    """Raise :class:`CheckpointError` unless ``path`` hashes to ``expected``."""
    actual = sha256_file(path)
    if actual.lower() != expected.lower():
        raise CheckpointError(
            f"{path}: sha256 is {actual}, but the pinned weights have {expected}; the file is corrupt or not "
            "the registered weights (delete it from the cache and download again)"
        )


def _legacy_error(path: Path) -> CheckpointError:
    from .convert import list_converters

    kinds = ", ".join(list_converters()) or "see `avperceive convert --list`"
    return CheckpointError(
        f"{path}: {path.suffix} files are pickles and are never loaded directly; convert the checkpoint first: "
        f"`avperceive convert KIND {path} OUT_DIR` (KIND one of: {kinds}), then load OUT_DIR "
        "(see docs/pretrained.md)"
    )


def _resolve_local(source: str, *, sha256: str | None) -> ResolvedCheckpoint:
    raw = source[len("local-dir:") :] if source.startswith("local-dir:") else source
    path = Path(raw).expanduser()
    if path.is_dir() and path.suffix == ".safetensors":
        raise CheckpointError(f"{path}: is a directory, not a safetensors file")
    if path.is_dir():
        weights = path / WEIGHTS_NAME
        if weights.is_dir():
            raise CheckpointError(f"{weights}: is a directory, not a safetensors file")
        if not weights.is_file():
            legacy = sorted(p for p in path.iterdir() if p.suffix in LEGACY_SUFFIXES and p.is_file())
            if legacy:
                raise _legacy_error(legacy[0])
            others = sorted(p.name for p in path.glob("*.safetensors") if p.is_file())
            hint = f" (it has {', '.join(others)}; pass that file's path)" if others else ""
            raise CheckpointError(f"{path}: no {WEIGHTS_NAME} in this folder{hint}")
        config = path / CONFIG_NAME
        resolved = ResolvedCheckpoint(weights, config if config.is_file() else None, source)
    elif path.is_file():
        if path.suffix in LEGACY_SUFFIXES or path.name.endswith(".pth.tar"):
            raise _legacy_error(path)
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path}: not a .safetensors file or a folder with {CONFIG_NAME} + {WEIGHTS_NAME}")
        sibling = path.parent / CONFIG_NAME
        config = sibling if path.name == WEIGHTS_NAME and sibling.is_file() else None
        resolved = ResolvedCheckpoint(path, config, source)
    else:
        raise CheckpointError(
            f"{source}: no such file or folder (pretrained takes True, 'hf-hub:org/repo[@rev]', "
            "'local-dir:/path', a folder or a .safetensors file)"
        )
    if sha256:
        verify_sha256(resolved.weights, sha256)
    return resolved


def _offline_message(hub: HubSource, cache_dir: str | Path | None, why: str) -> str:
    from huggingface_hub import constants

    cache = cache_dir or constants.HF_HUB_CACHE
    rev = f" --revision {hub.revision}" if hub.revision else ""
    return (
        f"{hub}: not in the local Hub cache ({cache}) and {why}, so nothing was downloaded. Get it once with "
        f"network access: `hf download {hub.repo_id}{rev}` (or `huggingface-cli download ...`), or run without "
        "HF_HUB_OFFLINE; or put config.json + model.safetensors in a folder and pass pretrained='local-dir:/folder'"
    )


def _resolve_hub(
    hub: HubSource,
    *,
    revision: str | None,
    cache_dir: str | Path | None,
    local_files_only: bool,
    token: str | bool | None,
    sha256: str | None,
) -> ResolvedCheckpoint:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if revision and hub.revision and revision != hub.revision:
        raise CheckpointError(f"{hub}: revision given twice ({hub.revision!r} in the id, {revision!r} as argument)")
    hub = HubSource(hub.repo_id, hub.revision or revision)
    env_offline = is_offline()
    offline = bool(local_files_only) or env_offline
    why = "HF_HUB_OFFLINE is set" if env_offline else "local_files_only=True"

    def fetch(filename: str) -> Path:
        return Path(
            hf_hub_download(
                hub.repo_id,
                filename,
                revision=hub.revision,
                cache_dir=cache_dir,
                local_files_only=offline,
                token=token,
                library_name="avperceive",
            )
        )

    try:
        weights = fetch(WEIGHTS_NAME)
    except LocalEntryNotFoundError as err:
        if offline:
            raise CheckpointError(_offline_message(hub, cache_dir, why)) from err
        raise CheckpointError(
            f"{hub}: cannot reach the Hub and the file is not cached ({err}); set HF_HUB_OFFLINE=1 to use the cache "
            "only, or pass a local folder"
        ) from err
    except GatedRepoError as err:
        raise CheckpointError(f"{hub}: gated repo; accept its terms on the Hub and pass token= ({err})") from err
    except RepositoryNotFoundError as err:
        raise CheckpointError(f"{hub}: no such repo (or it is private: pass token=)") from err
    except RevisionNotFoundError as err:
        raise CheckpointError(f"{hub}: no such revision") from err
    except EntryNotFoundError as err:
        raise CheckpointError(f"{hub}: the repo has no {WEIGHTS_NAME} (avperceive repos hold config.json + "
                              f"{WEIGHTS_NAME})") from err
    except OSError as err:
        raise CheckpointError(f"{hub}: cannot get {WEIGHTS_NAME} ({type(err).__name__}: {err})") from err
    try:
        config: Path | None = fetch(CONFIG_NAME)
    except (EntryNotFoundError, LocalEntryNotFoundError):
        config = None
    snapshot_rev = weights.parent.name if weights.parent.parent.name == "snapshots" else hub.revision
    if sha256:
        verify_sha256(weights, sha256)
    return ResolvedCheckpoint(weights, config, str(hub), snapshot_rev)


def resolve_checkpoint(
    source: str | Path,
    *,
    revision: str | None = None,
    cache_dir: str | Path | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
    sha256: str | None = None,
) -> ResolvedCheckpoint:
    """Return the local ``model.safetensors`` (and ``config.json``) of ``source``.

    Args:
        source: ``"hf-hub:org/repo[@rev]"``, ``"org/repo"``, ``"local-dir:/path"``, a folder or a
            ``.safetensors`` file.
        revision: Hub revision (commit, branch or tag); pin a commit for reproducible loads.
        cache_dir: Hub cache folder (default ``HF_HUB_CACHE``).
        local_files_only: never use the network (same as ``HF_HUB_OFFLINE=1``).
        token: Hub token for private / gated repos.
        sha256: expected sha256 of the weights file; checked when given.

    Raises:
        CheckpointError: with what to do next (offline miss, legacy pickle, bad hash, ...).
    """
    source = str(source)
    if source.startswith("local-dir:"):
        return _resolve_local(source, sha256=sha256)
    hub = parse_hub_source(source)
    if hub is None:
        return _resolve_local(source, sha256=sha256)
    return _resolve_hub(
        hub, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token, sha256=sha256
    )


def resolve_pretrained(
    source: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """Return a local folder containing ``config.json`` and ``model.safetensors``."""
    resolved = resolve_checkpoint(
        source, revision=revision, cache_dir=cache_dir, local_files_only=local_files_only, token=token
    )
    if resolved.config is None:
        raise CheckpointError(f"{source}: no {CONFIG_NAME} next to the weights")
    return resolved.weights.parent
