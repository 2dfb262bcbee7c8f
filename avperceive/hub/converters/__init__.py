"""Converter modules, one per reference family; importing this package registers them all.

Each module calls :func:`avperceive.hub.convert.register_converter`. Add a line here when a
converter module lands.
"""
