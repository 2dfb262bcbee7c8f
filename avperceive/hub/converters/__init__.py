"""Converter modules, one per reference family; importing this package registers them all.

Each module calls :func:`avperceive.hub.convert.register_converter`. Add a line here when a
converter module lands.
"""

from . import (
    adapters,  # noqa: F401
    dgsct,  # noqa: F401
    htsat,  # noqa: F401
    mc3,  # noqa: F401
    swinv2,  # noqa: F401
)
