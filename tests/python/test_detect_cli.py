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

from unirt_models import det_metrics
from unirt_models.export import export_model
from unirt_models.train_mask_rcnn import paste_mask_cpu, preprocess

LONG, SHORT = 320, 224


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
    x_ref, metas = preprocess(imgs, LONG, SHORT)  # mmcv.imrescale + Normalize + Pad as torch ops
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
        h, w, nh, nw, sw, sh = m["ori_h"], m["ori_w"], m["new_h"], m["new_w"], m["w_scale"], m["h_scale"]
        keep = r["dets"][:, 4] >= 0.05
        boxes = r["dets"][keep, :4].clone()
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, nw) / sw
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, nh) / sh
        # mmdetection's _do_paste_mask as it runs on the CPU (one box per chunk, skip_empty).
        ref_masks = np.stack([paste_mask_cpu(mk, tuple(float(v) for v in bx), h, w) for mk, bx in zip(r["masks"][keep], boxes)])
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


def test_detect_batches_up_to_the_engine_profile(unirt_bin, detector_onnx, tmp_path):
    """Without --batch, an engine whose profile allows batch 1 takes three images one at a time
    (not one batch of three outside its profile)."""
    from PIL import Image
    onnx_path, _ = detector_onnx
    engine = tmp_path / "b1.engine"
    subprocess.run([unirt_bin, "build", str(onnx_path), "--backend", "cpu", "-o", str(engine), "--min-shapes", "input:1x3x64x64",
                    "--opt-shapes", "input:1x3x128x160", "--max-shapes", "input:1x3x160x160"], check=True, capture_output=True)
    paths = []
    for i in range(3):
        paths.append(str(tmp_path / f"im{i}.png"))
        Image.fromarray(synthetic_image(120, 150, 20 + i)).save(paths[-1])
    proc = subprocess.run([unirt_bin, "detect", str(engine), *paths, "--long-edge", "160", "--short-edge", "128"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("detections (score >=") == 3
    assert "(1x3x128x160 1x3x128x160 1x3x128x160;" in proc.stdout, proc.stdout[-400:]


def test_detect_leaves_out_nan_boxes_with_a_warning(unirt_bin, tmp_path):
    """An engine whose dets hold NaN: that detection is left out (and said so), the others are
    drawn and written, nothing crashes."""
    import onnx
    from onnx import TensorProto, helper
    from PIL import Image
    dets = np.array([[[10, 10, 60, 50, 0.9], [np.nan, 5, 40, 40, 0.8]]], np.float32)
    masks = np.full((1, 2, 28, 28), 0.9, np.float32)
    nodes = [
        helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["dets_c", "z"], ["dets"]),
        helper.make_node("Add", ["masks_c", "z"], ["masks"]),
        helper.make_node("Identity", ["labels_c"], ["labels"]),
        helper.make_node("Identity", ["num_c"], ["num_dets"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("dets_c", TensorProto.FLOAT, dets.shape, dets.flatten().tolist()),
             helper.make_tensor("masks_c", TensorProto.FLOAT, masks.shape, masks.flatten().tolist()),
             helper.make_tensor("labels_c", TensorProto.INT64, [1, 2], [0, 1]),
             helper.make_tensor("num_c", TensorProto.INT64, [1], [2])]
    graph = helper.make_graph(nodes, "nan_dets", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, "h", "w"])],
                              [helper.make_tensor_value_info(n, t, None) for n, t in
                               (("dets", TensorProto.FLOAT), ("labels", TensorProto.INT64), ("masks", TensorProto.FLOAT),
                                ("num_dets", TensorProto.INT64))], inits)
    path = tmp_path / "nan.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    img = tmp_path / "a.png"
    Image.fromarray(synthetic_image(96, 128, 3)).save(img)
    proc = subprocess.run([unirt_bin, "detect", str(path), str(img), "--backend", "cpu", "--long-edge", "128", "--short-edge", "96",
                           "--json", str(tmp_path / "d.json"), "-o", str(tmp_path / "d.png")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "1 detection(s) with NaN box coordinates left out" in proc.stderr
    out = json.load(open(tmp_path / "d.json"))
    assert len(out) == 1 and abs(out[0]["score"] - 0.9) < 1e-6, out
    assert (tmp_path / "d.png").stat().st_size > 0
