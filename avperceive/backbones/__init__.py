"""avperceive.backbones"""
