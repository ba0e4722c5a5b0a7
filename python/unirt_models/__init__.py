"""PyTorch side of unirt: UniFormer definitions and the verified ONNX export."""
from .mask_rcnn import COCO_CLASSES, MASK_RCNN_NAMES, MaskRCNN, create_mask_rcnn, randomize_detector_
from .uniformer import MODEL_NAMES, UniFormer, UniFormerDet, create_model, is_detector, load_checkpoint, randomize_

__all__ = ["COCO_CLASSES", "MASK_RCNN_NAMES", "MODEL_NAMES", "MaskRCNN", "UniFormer", "UniFormerDet", "create_mask_rcnn",
           "create_model", "is_detector", "load_checkpoint", "randomize_", "randomize_detector_"]
