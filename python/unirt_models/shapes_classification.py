"""A generated image-classification dataset for accuracy measurements (quantization): 16 classes,
each a shape of the shapes dataset in a warm or a cool colour, on the same textured backgrounds,
with up to two small grey distractor shapes. Every image is drawn from its seed alone.

    from unirt_models.shapes_classification import make_split, CLASSES
    images, labels = make_split(first_seed=0, count=5000, size=224)
"""
import numpy as np

from unirt_models.shapes_dataset import CLASSES as SHAPES, _background, _shape_mask

TONES = ("warm", "cool")
CLASSES = tuple(f"{s}-{t}" for s in SHAPES for t in TONES)


def _colour(rng, tone):
    """A warm (red/orange/yellow) or cool (blue/cyan/green) colour."""
    hue = rng.uniform(-0.08, 0.14) if tone == "warm" else rng.uniform(0.45, 0.7)
    hue %= 1.0
    sat, val = rng.uniform(0.6, 1.0), rng.uniform(0.55, 1.0)
    k = (np.array([5.0, 3.0, 1.0]) + hue * 6) % 6
    return 255 * val * (1 - sat * np.clip(np.minimum(k, 4 - k), 0, 1))


def make_sample(seed, size=224):
    """One image (uint8 size x size x 3) and its class index."""
    rng = np.random.default_rng(seed)
    label = int(rng.integers(0, len(CLASSES)))
    shape, tone = divmod(label, len(TONES))
    img = _background(rng, size, size)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):  # small grey distractors, drawn first
        r = rng.uniform(0.06, 0.12) * size
        m = _shape_mask(int(rng.integers(0, len(SHAPES))), xx, yy, rng.uniform(r, size - r), rng.uniform(r, size - r), r,
                        rng.uniform(0, np.pi), rng.uniform(0.45, 0.8))
        img[m] = rng.uniform(90, 170)
    r = rng.uniform(0.2, 0.36) * size
    m = _shape_mask(shape, xx, yy, rng.uniform(r, size - r), rng.uniform(r, size - r), r, rng.uniform(0, np.pi), rng.uniform(0.45, 0.8))
    shade = 1 + 0.2 * np.sin(xx / rng.uniform(6, 20))[..., None]
    img[m] = (_colour(rng, TONES[tone]) * shade[m]).clip(0, 255)
    return np.clip(img, 0, 255).astype(np.uint8), label


def make_split(first_seed, count, size=224):
    """count images [count, size, size, 3] uint8 and labels [count] int64, seeds first_seed.."""
    images = np.empty((count, size, size, 3), np.uint8)
    labels = np.empty(count, np.int64)
    for i in range(count):
        images[i], labels[i] = make_sample(first_seed + i, size)
    return images, labels


MEAN = np.array([0.485, 0.456, 0.406], np.float32) * 255
STD = np.array([0.229, 0.224, 0.225], np.float32) * 255


def normalize(images):
    """uint8 [n, h, w, 3] -> float32 [n, 3, h, w] with the ImageNet mean/std (classify's preprocessing
    after its resize and crop)."""
    return ((images.astype(np.float32) - MEAN) / STD).transpose(0, 3, 1, 2).copy()
