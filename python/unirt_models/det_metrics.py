"""Comparing two detectors' outputs: which detections of a reference the other reproduces."""
import numpy as np


def split_batched(dets, labels, masks, num_dets):
    """Padded outputs (dets [N, K, 5], labels [N, K], masks [N, K, 28, 28], num_dets [N]) -> one
    dict per image with only its num_dets rows."""
    out = []
    for b in range(len(num_dets)):
        n = int(num_dets[b])
        out.append(dict(dets=np.asarray(dets[b, :n], np.float64), labels=np.asarray(labels[b, :n]),
                        masks=np.asarray(masks[b, :n], np.float64)))
    return out


def box_iou(a, b):
    """IoU of every box in a [n, 4] with every box in b [m, 4] (x0, y0, x1, y1)."""
    a, b = np.asarray(a, np.float64)[:, None, :4], np.asarray(b, np.float64)[None, :, :4]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda t: (t[..., 2] - t[..., 0]) * (t[..., 3] - t[..., 1])
    union = area(a) + area(b) - inter
    # Two equal boxes without area (clipped into an image edge) are the same box: IoU 1.
    same = np.all(np.abs(a - b) < 1e-3, axis=-1)
    return np.where(union > 1e-12, inter / np.maximum(union, 1e-12), same.astype(np.float64))


def match_detections(ref, got, score_thr=0.3, iou_thr=0.9, mask_thr=0.5):
    """Greedy, in descending reference score: each reference detection with score > score_thr takes
    the unmatched detection of `got` with the same label and the highest box IoU >= iou_thr.
    Returns counts, the matched share, the mean IoU of matched masks (28x28, thresholded at
    mask_thr, in box coordinates) and the largest box / score / mask-probability differences."""
    n_ref = n_match = 0
    mask_ious, box_err, score_err, mask_err = [], 0.0, 0.0, 0.0
    for r, g in zip(ref, got):
        keep = np.nonzero(r["dets"][:, 4] > score_thr)[0]
        keep = keep[np.argsort(-r["dets"][keep, 4], kind="stable")]
        n_ref += len(keep)
        if not len(keep) or not len(g["dets"]):
            continue
        iou = box_iou(r["dets"][keep], g["dets"])
        iou[r["labels"][keep][:, None] != g["labels"][None, :]] = -1
        used = np.zeros(len(g["dets"]), bool)
        for row, i in enumerate(keep):
            cand = np.where(used, -1, iou[row])
            j = int(np.argmax(cand))
            if cand[j] < iou_thr:
                continue
            used[j] = True
            n_match += 1
            box_err = max(box_err, float(np.abs(r["dets"][i, :4] - g["dets"][j, :4]).max()))
            score_err = max(score_err, abs(float(r["dets"][i, 4] - g["dets"][j, 4])))
            if "masks" in r and "masks" in g:
                mr, mg = r["masks"][i] >= mask_thr, g["masks"][j] >= mask_thr
                union = np.logical_or(mr, mg).sum()
                mask_ious.append(np.logical_and(mr, mg).sum() / union if union else 1.0)
                mask_err = max(mask_err, float(np.abs(r["masks"][i] - g["masks"][j]).max()))
    return dict(n_ref=n_ref, n_matched=n_match, share=n_match / n_ref if n_ref else 1.0,
                mean_mask_iou=float(np.mean(mask_ious)) if mask_ious else float("nan"),
                max_box_err=box_err, max_score_err=score_err, max_mask_err=mask_err)
