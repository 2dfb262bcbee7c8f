"""The registry, as seen from :mod:`avperceive.models` (re-exported from :mod:`avperceive.registry`).

The registry itself lives one layer down, in :mod:`avperceive.registry`, so that the backbones
(which never import ``models``) register there too. Every name here is the same object as there.
"""

from __future__ import annotations

from ..registry import *  # noqa: F403  (the same objects, so registering here registers there)
from ..registry import _REGISTRY as _REGISTRY
from ..registry import __all__ as __all__
