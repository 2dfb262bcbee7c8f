"""Plain-PyTorch fine-tuning loops and recipes; sits above :mod:`avperceive.models`."""
