"""avperceive.analysis"""
