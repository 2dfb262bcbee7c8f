"""avperceive.io"""
