"""UniFormer Mask R-CNN: mmdetection's parameter names, strict checkpoint loading, the batched
exported forward against the image-by-image reference, and unirt's CPU backend against PyTorch."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from unirt_models import det_metrics, load_checkpoint
from unirt_models.mask_rcnn import create_mask_rcnn, randomize_detector_

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Every parameter outside the backbone, as mmdetection 2.11 names and shapes it (FPN ConvModules,
# RPNHead, Shared2FCBBoxHead, FCNMaskHead with a deconv upsample).
MMDET_KEYS = {
    **{f"neck.lateral_convs.{i}.conv.weight": (256, c, 1, 1) for i, c in enumerate((64, 128, 320, 512))},
    **{f"neck.lateral_convs.{i}.conv.bias": (256,) for i in range(4)},
    **{f"neck.fpn_convs.{i}.conv.weight": (256, 256, 3, 3) for i in range(4)},
    **{f"neck.fpn_convs.{i}.conv.bias": (256,) for i in range(4)},
    "rpn_head.rpn_conv.weight": (256, 256, 3, 3), "rpn_head.rpn_conv.bias": (256,),
    "rpn_head.rpn_cls.weight": (3, 256, 1, 1), "rpn_head.rpn_cls.bias": (3,),
    "rpn_head.rpn_reg.weight": (12, 256, 1, 1), "rpn_head.rpn_reg.bias": (12,),
    "roi_head.bbox_head.shared_fcs.0.weight": (1024, 12544), "roi_head.bbox_head.shared_fcs.0.bias": (1024,),
    "roi_head.bbox_head.shared_fcs.1.weight": (1024, 1024), "roi_head.bbox_head.shared_fcs.1.bias": (1024,),
    "roi_head.bbox_head.fc_cls.weight": (81, 1024), "roi_head.bbox_head.fc_cls.bias": (81,),
    "roi_head.bbox_head.fc_reg.weight": (320, 1024), "roi_head.bbox_head.fc_reg.bias": (320,),
    **{f"roi_head.mask_head.convs.{i}.conv.weight": (256, 256, 3, 3) for i in range(4)},
    **{f"roi_head.mask_head.convs.{i}.conv.bias": (256,) for i in range(4)},
    "roi_head.mask_head.upsample.weight": (256, 256, 2, 2), "roi_head.mask_head.upsample.bias": (256,),
    "roi_head.mask_head.conv_logits.weight": (80, 256, 1, 1), "roi_head.mask_head.conv_logits.bias": (80,),
}


def test_mmdetection_names_and_shapes():
    sd = create_mask_rcnn("uniformer_small_mask_rcnn").state_dict()
    heads = {k: tuple(v.shape) for k, v in sd.items() if not k.startswith("backbone.")}
    assert heads == MMDET_KEYS
    from unirt_models import create_model
    backbone = {"backbone." + k for k in create_model("uniformer_small_det_hybrid").state_dict()}
    assert {k for k in sd if k.startswith("backbone.")} == backbone


@pytest.mark.parametrize("name,params_m", [("uniformer_small_mask_rcnn", 41.2), ("uniformer_base_mask_rcnn", 69.4)])
def test_parameter_count(name, params_m):
    # Published: S h14 Mask R-CNN 41 M parameters.
    n = sum(p.numel() for p in create_mask_rcnn(name).parameters()) / 1e6
    assert abs(n - params_m) < 0.1, n


def test_mmdetection_checkpoint_loads_strictly(tmp_path):
    src = randomize_detector_(create_mask_rcnn("uniformer_small_mask_rcnn").eval(), seed=4)
    path = tmp_path / "mask_rcnn.pth"
    torch.save({"meta": {"mmdet_version": "2.11.0"}, "state_dict": src.state_dict()}, path)
    dst = load_checkpoint(create_mask_rcnn("uniformer_small_mask_rcnn").eval(), str(path))
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        for a, b in zip(src(x), dst(x)):
            assert torch.equal(a, b)
    bad = {"state_dict": {k: v for k, v in src.state_dict().items() if k != "roi_head.mask_head.upsample.bias"}}
    with pytest.raises(RuntimeError):
        load_checkpoint(create_mask_rcnn("uniformer_small_mask_rcnn"), bad)


def reference_dets(per_image):
    return [dict(dets=r["dets"].numpy().astype(np.float64), labels=r["labels"].numpy(), masks=r["masks"].numpy())
            for r in per_image]


@pytest.fixture(scope="module")
def detector():
    return randomize_detector_(create_mask_rcnn("uniformer_small_mask_rcnn").eval(), seed=0)


@pytest.mark.parametrize("shape", [(1, 3, 160, 224), (2, 3, 128, 192)])
def test_batched_forward_matches_image_by_image_reference(detector, shape):
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        ref = reference_dets(detector.simple_test(x))
        got = det_metrics.split_batched(*[t.numpy() for t in detector(x)])
    m = det_metrics.match_detections(ref, got, score_thr=0.05)
    print(shape, m)
    assert m["n_ref"] > 0 and m["share"] == 1.0
    assert m["max_box_err"] < 1e-3 and m["max_mask_err"] < 1e-5


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["nchw", "nhwc"])
def test_unirt_cpu_matches_pytorch(unirt_bin, tmp_path, layout):
    """The whole detector exported (postprocessing included) and run by unirt's CPU backend, with
    NCHW convolutions and with the channels-last regions the CUDA backend uses."""
    out = tmp_path / "parity.md"
    proc = subprocess.run([sys.executable, os.path.join(REPO, "scripts", "detector_parity.py"), "--unirt", unirt_bin,
                           "--backend", "cpu", "--layout", layout, "--shapes", "1x3x160x224,2x3x128x192", "--workdir", str(tmp_path),
                           "--out", str(out)], capture_output=True, text=True)
    print(proc.stdout[-3000:])
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-2000:]
