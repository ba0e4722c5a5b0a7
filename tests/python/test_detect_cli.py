"""`unirt detect` against PyTorch: mmdetection's preprocessing (keep-ratio bilinear resize, normalise,
pad to 32), the detector (image-by-image reference), boxes rescaled to the original image and
masks pasted with torch's grid_sample as mmdetection's _do_paste_mask does, COCO RLE decoded by
pycocotools. CPU backend, small resize limits so the test is quick."""
import json
import os
import subprocess

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from unirt_models import det_metrics
from unirt_models.export import export_model

MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)
LONG, SHORT = 320, 224


def mmdet_preprocess(imgs, long_edge=LONG, short_edge=SHORT, divisor=32):
    """mmcv.imrescale + Normalize + Pad as tensors: bilinear (half-pixel, no antialias) rounded to
    8 bits, then (x - mean) / std, padded at the bottom/right to the batch's largest multiple of 32."""
    out, metas = [], []
    for img in imgs:
        h, w = img.shape[:2]
        scale = min(max(long_edge, short_edge) / max(h, w), min(long_edge, short_edge) / min(h, w))
        nw, nh = int(w * scale + 0.5), int(h * scale + 0.5)
        t = torch.from_numpy(img).permute(2, 0, 1)[None].float()
        r = torch.floor(F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False) + 0.5)[0]
        r = (r - torch.from_numpy(MEAN)[:, None, None]) / torch.from_numpy(STD)[:, None, None]
        out.append(r)
        metas.append(dict(ori=(h, w), new=(nh, nw), scale=(nw / w, nh / h)))
    H = -(-max(r.shape[1] for r in out) // divisor) * divisor
    W = -(-max(r.shape[2] for r in out) // divisor) * divisor
    x = torch.zeros(len(out), 3, H, W)
    for i, r in enumerate(out):
        x[i, :, :r.shape[1], :r.shape[2]] = r
    return x, metas


def paste_masks(masks, boxes, h, w, thr=0.5):
    """mmdetection's _do_paste_mask as it runs on the CPU: one box per chunk, skip_empty (only the
    box's region, floor(x0) - 1 .. ceil(x1) + 1), grid_sample there, thresholded."""
    out = torch.zeros(masks.shape[0], h, w, dtype=torch.bool)
    for i in range(masks.shape[0]):
        x0, y0, x1, y1 = boxes[i]
        rx0, ry0 = max(int(torch.floor(x0)) - 1, 0), max(int(torch.floor(y0)) - 1, 0)
        rx1, ry1 = min(int(torch.ceil(x1)) + 1, w), min(int(torch.ceil(y1)) + 1, h)
        img_y = (torch.arange(ry0, ry1, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
        img_x = (torch.arange(rx0, rx1, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
        img_x[torch.isinf(img_x)] = 0
        img_y[torch.isinf(img_y)] = 0
        grid = torch.stack([img_x[None, :].expand(len(img_y), len(img_x)), img_y[:, None].expand(len(img_y), len(img_x))], dim=2)
        out[i, ry0:ry1, rx0:rx1] = F.grid_sample(masks[i][None, None].float(), grid[None], align_corners=False)[0, 0] >= thr
    return out


def synthetic_image(h, w, seed):
    """Textured background and a few filled shapes."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = (np.stack([np.sin(xx / 7.0), np.cos(yy / 5.0), np.sin((xx + yy) / 11.0)], -1) * 60 + 120).astype(np.float32)
    for _ in range(4):
        cx, cy, r = rng.integers(0, w), rng.integers(0, h), rng.integers(10, max(11, min(h, w) // 3))
        img[(xx - cx) ** 2 + (yy - cy) ** 2 < r * r] = rng.integers(0, 255, 3)
    return np.clip(img, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def detector_onnx(tmp_path_factory):
    path = tmp_path_factory.mktemp("det") / "mask_rcnn.onnx"
    model = export_model("uniformer_small_mask_rcnn", str(path), verify_onnx=False, quiet=True).eval()
    return path, model


@pytest.mark.slow
def test_detect_matches_pytorch(unirt_bin, detector_onnx, tmp_path):
    from PIL import Image
    from pycocotools import mask as mask_util

    onnx_path, model = detector_onnx
    imgs = [synthetic_image(300, 410, 1), synthetic_image(257, 199, 2)]  # two sizes: one padded batch
    paths = []
    for i, im in enumerate(imgs):
        paths.append(str(tmp_path / f"img{i}.png"))
        Image.fromarray(im).save(paths[-1])
    out_json, saved = tmp_path / "dets.json", tmp_path / "input.npy"
    proc = subprocess.run([unirt_bin, "detect", str(onnx_path), *paths, "--backend", "cpu", "--long-edge", str(LONG), "--short-edge",
                           str(SHORT), "--score-thr", "0.05", "--json", str(out_json), "--save-input", str(saved), "-o", str(tmp_path / "drawn")],
                          capture_output=True, text=True)
    print(proc.stdout[-1500:])
    assert proc.returncode == 0, proc.stderr

    # Preprocessing: the same tensor up to a pixel rounding on an exact .5 here and there.
    x_ref, metas = mmdet_preprocess(imgs)
    x = np.load(saved)
    assert x.shape == tuple(x_ref.shape)
    diff = np.abs(x - x_ref.numpy())
    print(f"preprocessing: max abs {diff.max():.2e}, pixels off by one level: {(diff > 1e-4).mean():.2e}")
    assert diff.max() <= 1.01 / 57.12 and (diff > 1e-4).mean() < 1e-3

    # Detections: PyTorch's on the tensor unirt ran (a random detector turns a one-level pixel
    # difference into different boxes), rescaled and pasted as mmdetection does.
    with torch.no_grad():
        ref = model.simple_test(torch.from_numpy(x))
    results = json.load(open(out_json))
    for i, (r, m) in enumerate(zip(ref, metas)):
        (h, w), (nh, nw), (sw, sh) = m["ori"], m["new"], m["scale"]
        keep = r["dets"][:, 4] >= 0.05
        boxes = r["dets"][keep, :4].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, nw) / sw
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, nh) / sh
        ref_masks = paste_masks(r["masks"][keep], boxes, h, w).numpy()
        mine = [d for d in results if d["image_id"] == i]
        got = dict(dets=np.array([[*d["bbox"][:2], d["bbox"][0] + d["bbox"][2], d["bbox"][1] + d["bbox"][3], d["score"]] for d in mine]),
                   labels=np.array([d["category_id"] for d in mine]),
                   masks=np.stack([mask_util.decode(d["segmentation"]) for d in mine]) if mine else np.zeros((0, h, w)))
        coco_ids = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32, 33, 34, 35,
                             36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64,
                             65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90])
        want = dict(dets=np.concatenate([boxes.numpy(), r["dets"][keep, 4:].numpy()], 1).astype(np.float64),
                    labels=coco_ids[r["labels"][keep].numpy()], masks=ref_masks)
        mt = det_metrics.match_detections([want], [got], score_thr=0.05, iou_thr=0.9, mask_thr=0.5)
        print(f"image {i}: {mt}")
        assert mt["n_ref"] > 0 and mt["share"] >= 0.99, mt
        assert mt["mean_mask_iou"] >= 0.99, mt
        assert os.path.exists(tmp_path / "drawn" / f"img{i}.png")


def test_detect_refuses_a_classifier_engine(unirt_bin, tmp_path):
    from PIL import Image
    onnx_path = tmp_path / "s.onnx"
    export_model("uniformer_small", str(onnx_path), verify_onnx=False, quiet=True)
    img = tmp_path / "a.png"
    Image.fromarray(synthetic_image(64, 64, 3)).save(img)
    proc = subprocess.run([unirt_bin, "detect", str(onnx_path), str(img), "--backend", "cpu", "--long-edge", "64", "--short-edge", "64"],
                          capture_output=True, text=True)
    assert proc.returncode != 0
    assert "no output 'dets'" in proc.stderr, proc.stderr


def test_detect_batches_ids_and_random_weights_note(unirt_bin, detector_onnx, tmp_path):
    """--batch splits the images into engine runs, --image-ids names them in the JSON, and the
    seeded random weights are called what they are."""
    from PIL import Image
    onnx_path, _ = detector_onnx
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"im{i}.png"))
        Image.fromarray(synthetic_image(120 + 10 * i, 150, 10 + i)).save(paths[-1])
    out_json = tmp_path / "d.json"
    proc = subprocess.run([unirt_bin, "detect", str(onnx_path), *paths, "--backend", "cpu", "--long-edge", "160", "--short-edge", "128",
                           "--batch", "2", "--image-ids", "7", "9", "11", "--score-thr", "0.5", "--json", str(out_json)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "NOTE: this model's weights are seeded random" in proc.stdout
    assert proc.stdout.count("detections (score >=") == 3
    ids = {d["image_id"] for d in json.load(open(out_json))}
    assert ids <= {7, 9, 11} and ids, ids
    bad = subprocess.run([unirt_bin, "detect", str(onnx_path), *paths, "--backend", "cpu", "--image-ids", "1", "2"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "--image-ids gives 2 ids for 3 images" in bad.stderr
