"""avperceive.signal"""
