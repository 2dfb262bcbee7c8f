"""The names of the two streams and of the modality settings, in one place.

* A **stream** is ``"audio"`` or ``"video"``; :data:`STREAM_ALIASES` maps the short and long
  spellings users write (``"a"``, ``"v"``, ``"vis"``, ``"visual"``, any case) to those two.
* A **modality** setting says which streams a model sees: ``"av"`` (both), ``"a"`` (audio only:
  the video stream is withdrawn) or ``"v"`` (video only). A withdrawn stream is all zeros of its
  normal shape, the convention of the DG-SCT / SoundActions / EoPMA experiments
  (:func:`avperceive.io.clip.zero_missing_modality`).

Sits beside :mod:`avperceive.errors` at the bottom of the layers: every layer may import it.
"""

from __future__ import annotations

from .errors import ConfigError

__all__ = ["STREAMS", "STREAM_ALIASES", "MODALITY_STREAMS", "MODALITIES", "canonical_stream", "check_modality"]

#: the two streams, in the order used everywhere (audio first in names, e.g. ``audio_p1``).
STREAMS: tuple[str, ...] = ("audio", "video")
#: every accepted spelling of a stream (lower case) -> its canonical name.
STREAM_ALIASES: dict[str, str] = {
    "audio": "audio", "a": "audio",
    "video": "video", "v": "video", "vis": "video", "visual": "video",
}  # fmt: skip
#: modality setting -> the streams it keeps.
MODALITY_STREAMS: dict[str, tuple[str, ...]] = {"av": ("audio", "video"), "a": ("audio",), "v": ("video",)}
#: the modality settings: ``("av", "a", "v")``.
MODALITIES: tuple[str, ...] = tuple(MODALITY_STREAMS)


def canonical_stream(name: str) -> str:
    """``"a"``/``"audio"`` -> ``"audio"``, ``"v"``/``"vis"``/``"visual"``/``"video"`` -> ``"video"`` (any case).

    Raises:
        ConfigError: for any other name.
    """
    stream = STREAM_ALIASES.get(str(name).lower())
    if stream is None:
        raise ConfigError(f"unknown stream {name!r}; use 'a'/'audio' or 'v'/'video'")
    return stream


def check_modality(modality: str, what: str = "modality") -> str:
    """Return ``modality`` if it is ``"av"``, ``"a"`` or ``"v"``.

    Args:
        modality: the setting to check.
        what: the name of the option in the error message.

    Raises:
        ConfigError: naming ``what`` and the accepted values.
    """
    if modality not in MODALITY_STREAMS:
        raise ConfigError(f"{what} must be one of {MODALITIES}, got {modality!r}")
    return modality
