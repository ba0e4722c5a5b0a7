"""PyTorch side of unirt: UniFormer definitions and the verified ONNX export."""
from .uniformer import MODEL_NAMES, UniFormer, UniFormerDet, create_model, is_detector, load_checkpoint, randomize_

__all__ = ["MODEL_NAMES", "UniFormer", "UniFormerDet", "create_model", "is_detector", "load_checkpoint",
           "randomize_"]
