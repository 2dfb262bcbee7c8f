"""Converter modules, one per reference family; importing this package registers them all.

Each module calls :func:`avperceive.hub.convert.register_converter`. Add a line here when a
converter module lands.
"""

from . import dgsct  # noqa: F401
from . import swinv2  # noqa: F401
from . import htsat  # noqa: F401
from . import adapters  # noqa: F401
from . import mc3  # noqa: F401
