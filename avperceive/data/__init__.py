"""avperceive.data"""
