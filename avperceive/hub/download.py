"""Resolve a pretrained source (local folder, ``local-dir:``, ``hf-hub:`` / repo id) to a local folder.

The issue on Hub loading extends this (revisions, sha256 pinning, offline messages).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError

__all__ = ["resolve_pretrained"]


def resolve_pretrained(
    source: str,
    *,
    revision: str | None = None,
    cache_dir: str | None = None,
    local_files_only: bool = False,
    token: str | bool | None = None,
) -> Path:
    """Return a local folder containing ``config.json`` and ``model.safetensors``."""
    if source.startswith("local-dir:"):
        source = source[len("local-dir:") :]
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    if source.startswith("hf-hub:") or (source.count("/") == 1 and not path.exists()):
        from huggingface_hub import snapshot_download

        repo_id = source[len("hf-hub:") :] if source.startswith("hf-hub:") else source
        if "@" in repo_id:
            repo_id, revision = repo_id.split("@", 1)
        try:
            folder = snapshot_download(
                repo_id,
                revision=revision,
                cache_dir=cache_dir,
                local_files_only=local_files_only,
                token=token,
                allow_patterns=["config.json", "model.safetensors"],
            )
        except Exception as err:  # noqa: BLE001 - re-raised with the repo named
            raise CheckpointError(f"hf-hub:{repo_id}: cannot get the weights ({type(err).__name__}: {err})") from err
        return Path(folder)
    raise CheckpointError(f"{source}: not a folder, .safetensors file or hf-hub: id")
