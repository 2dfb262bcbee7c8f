"""avperceive.nn"""
