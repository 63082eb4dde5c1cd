"""Video input and output at the pixel boundary: uint8 frames (T, H, W, 3) plus an fps."""
