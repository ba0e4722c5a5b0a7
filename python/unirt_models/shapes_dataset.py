"""A generated instance-segmentation dataset: shapes of several classes, sizes and overlaps on
textured backgrounds, with exact masks and COCO-format annotations.

    python -m unirt_models.shapes_dataset --out data/shapes --train 2000 --val 200 --seed 0

Every image is drawn from its seed alone, so a split is reproducible image by image. Shapes are
painted back to front; each instance's mask is what stays visible of it (an instance hidden below
30% of its own area is dropped), its box is the visible mask's extent.
"""
import argparse
import json
import os

import numpy as np

CLASSES = ("circle", "square", "triangle", "star", "ring", "cross", "hexagon", "ellipse")


def _background(rng, h, w):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = rng.uniform(40, 215, 3)
    img = np.empty((h, w, 3), np.float32)
    kind = rng.integers(0, 3)
    for c in range(3):
        if kind == 0:  # stripes
            f, ph, ang = rng.uniform(0.03, 0.2), rng.uniform(0, 6.3), rng.uniform(0, np.pi)
            img[..., c] = base[c] + 35 * np.sin(f * (xx * np.cos(ang) + yy * np.sin(ang)) + ph)
        elif kind == 1:  # gradient
            img[..., c] = base[c] + rng.uniform(-60, 60) * (xx / w - 0.5) + rng.uniform(-60, 60) * (yy / h - 0.5)
        else:  # blotches: upsampled noise
            small = rng.normal(0, 30, (h // 16 + 2, w // 16 + 2))
            img[..., c] = base[c] + np.kron(small, np.ones((16, 16)))[:h, :w]
    img += rng.normal(0, 8, img.shape)  # grain
    return img


def _polygon_mask(xx, yy, pts):
    """Inside test of a convex or star polygon by crossing number."""
    inside = np.zeros(xx.shape, bool)
    n = len(pts)
    for i in range(n):
        (x0, y0), (x1, y1) = pts[i], pts[(i + 1) % n]
        cond = (y0 > yy) != (y1 > yy)
        xcross = (x1 - x0) * (yy - y0) / (y1 - y0 + 1e-9) + x0
        inside ^= cond & (xx < xcross)
    return inside


def _shape_mask(cls, xx, yy, cx, cy, r, ang, aspect):
    dx, dy = xx - cx, yy - cy
    ca, sa = np.cos(ang), np.sin(ang)
    u, v = dx * ca + dy * sa, -dx * sa + dy * ca
    name = CLASSES[cls]
    if name == "circle":
        return u * u + v * v <= r * r
    if name == "square":
        return (np.abs(u) <= r * 0.85) & (np.abs(v) <= r * 0.85)
    if name == "ellipse":
        return (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1
    if name == "ring":
        d = u * u + v * v
        return (d <= r * r) & (d >= (0.55 * r) ** 2)
    if name == "cross":
        t = r * 0.33
        return ((np.abs(u) <= r) & (np.abs(v) <= t)) | ((np.abs(v) <= r) & (np.abs(u) <= t))
    k, inner = {"triangle": (3, None), "hexagon": (6, None), "star": (5, 0.45)}[name]
    pts = []
    for i in range(k * (2 if inner else 1)):
        a = ang + np.pi * 2 * i / (k * (2 if inner else 1)) - np.pi / 2
        rr = r if (inner is None or i % 2 == 0) else r * inner
        pts.append((cx + rr * np.cos(a), cy + rr * np.sin(a)))
    return _polygon_mask(xx, yy, pts)


def make_image(seed, h_range=(320, 480), w_range=(320, 640), max_instances=7):
    """One image (uint8 HxWx3) and its instances: list of (class, mask HxW bool)."""
    rng = np.random.default_rng(seed)
    h, w = int(rng.integers(*h_range)), int(rng.integers(*w_range))
    img = _background(rng, h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    n = int(rng.integers(1, max_instances + 1))
    painted = []  # (cls, full mask) back to front
    for _ in range(n):
        cls = int(rng.integers(0, len(CLASSES)))
        r = float(rng.uniform(0.05, 0.28) * min(h, w))
        cx, cy = rng.uniform(r * 0.3, w - r * 0.3), rng.uniform(r * 0.3, h - r * 0.3)
        m = _shape_mask(cls, xx, yy, cx, cy, r, rng.uniform(0, np.pi), rng.uniform(0.45, 0.8))
        if m.sum() < 64:
            continue
        colour = rng.uniform(0, 255, 3)
        shade = 1 + 0.25 * np.sin(xx / rng.uniform(6, 20))[..., None]  # a texture of its own
        img[m] = (colour * shade[m]).clip(0, 255)
        painted.append((cls, m))
    instances = []
    covered = np.zeros((h, w), bool)
    for cls, m in reversed(painted):  # front to back: what is left visible
        vis = m & ~covered
        covered |= m
        if vis.sum() >= 0.3 * m.sum() and vis.sum() >= 64:
            instances.append((cls, vis))
    return np.clip(img, 0, 255).astype(np.uint8), instances[::-1]


def coco_dict(samples, file_prefix):
    """(image, instances) pairs -> the COCO dict: file names <prefix><index>.png, RLE masks,
    boxes as the visible masks' extents."""
    from pycocotools import mask as mask_util

    images, anns = [], []
    for i, (img, inst) in enumerate(samples):
        images.append(dict(id=i, file_name=f"{file_prefix}{i:06d}.png", height=img.shape[0], width=img.shape[1]))
        for cls, m in inst:
            rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
            ys, xs = np.nonzero(m)
            x0, y0, x1, y1 = float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)
            anns.append(dict(id=len(anns) + 1, image_id=i, category_id=cls + 1, iscrowd=0, area=float(m.sum()),
                             bbox=[x0, y0, x1 - x0, y1 - y0],
                             segmentation=dict(size=list(rle["size"]), counts=rle["counts"].decode())))
    cats = [dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)]
    return dict(images=images, annotations=anns, categories=cats)


def coco_split(first_seed, count, image_dir, file_prefix):
    """Writes `count` images into image_dir; returns the COCO dict."""
    from PIL import Image

    os.makedirs(image_dir, exist_ok=True)
    samples = [make_image(first_seed + i) for i in range(count)]
    coco = coco_dict(samples, file_prefix)
    for im, (img, _) in zip(coco["images"], samples):
        Image.fromarray(img).save(os.path.join(image_dir, im["file_name"]))
    return coco


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True)
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--val", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    for split, count, seed in (("train", a.train, a.seed), ("val", a.val, a.seed + 10_000_000)):
        coco = coco_split(seed, count, os.path.join(a.out, split), f"{split}_")
        with open(os.path.join(a.out, f"{split}.json"), "w") as f:
            json.dump(coco, f)
        print(f"{split}: {len(coco['images'])} images, {len(coco['annotations'])} instances")


if __name__ == "__main__":
    main()
