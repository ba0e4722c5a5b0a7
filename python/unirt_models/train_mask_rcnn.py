"""Training the UniFormer Mask R-CNN (this exact model) on the generated shapes dataset, and COCO
evaluation of its detections, in plain PyTorch + torchvision.ops.

The losses follow the official config's train_cfg (mmdetection 2.11): RPN anchors assigned by IoU
(positive >= 0.7, negative < 0.3, each box's best anchors positive from 0.3), 256 sampled (half
positive at most), binary cross-entropy and L1 on the deltas; proposals as at test time but with
nms_pre 2000; R-CNN: ground truth added to the proposals, assigned at 0.5, 512 sampled (a quarter
positive at most), cross-entropy over 81 classes and L1 on the class's deltas (stds 0.1/0.1/0.2/
0.2), the mask head's binary cross-entropy against the ground-truth mask RoIAligned to 28x28. AdamW
(the config's optimizer), bfloat16 autocast, seeded.
"""
import math
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
import torchvision

from .mask_rcnn import delta2bbox


def bbox2delta(proposals, gt, stds):
    px, py = (proposals[:, 0] + proposals[:, 2]) * 0.5, (proposals[:, 1] + proposals[:, 3]) * 0.5
    pw, ph = proposals[:, 2] - proposals[:, 0], proposals[:, 3] - proposals[:, 1]
    gx, gy = (gt[:, 0] + gt[:, 2]) * 0.5, (gt[:, 1] + gt[:, 3]) * 0.5
    gw, gh = gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1]
    d = torch.stack([(gx - px) / pw, (gy - py) / ph, torch.log(gw / pw), torch.log(gh / ph)], dim=-1)
    return d / d.new_tensor(stds)


def assign(boxes, gt, pos_thr, neg_thr, min_pos):
    """MaxIoUAssigner: the matched ground truth per box (-1 negative, -2 ignored)."""
    out = torch.full((boxes.shape[0],), -2, dtype=torch.long, device=boxes.device)
    if gt.shape[0] == 0:
        out[:] = -1
        return out
    iou = torchvision.ops.box_iou(boxes, gt)
    best, arg = iou.max(1)
    out[(best >= 0) & (best < neg_thr)] = -1
    out[best >= pos_thr] = arg[best >= pos_thr]
    gt_best, _ = iou.max(0)  # low-quality matches: each box's best anchors
    for j in range(gt.shape[0]):
        if gt_best[j] >= min_pos:
            out[iou[:, j] == gt_best[j]] = j
    return out


def sample(assigned, num, pos_fraction, gen):
    pos = torch.nonzero(assigned >= 0).squeeze(1)
    neg = torch.nonzero(assigned == -1).squeeze(1)
    pos = pos[torch.randperm(pos.numel(), generator=gen, device="cpu")[:int(num * pos_fraction)].to(pos.device)]
    neg = neg[torch.randperm(neg.numel(), generator=gen, device="cpu")[:num - pos.numel()].to(neg.device)]
    return pos, neg


def all_anchors(model, feats):
    return torch.cat([model.rpn_head.grid_anchors(l, f.shape[2], f.shape[3]) for l, f in enumerate(feats)])


def proposals_for_training(model, rpn_cls, rpn_reg, img_h, img_w, nms_pre=2000, keep=1000):
    """Per image: per-level top nms_pre, decoded, level-separated NMS 0.7, 1000 kept (no grad)."""
    out = []
    with torch.no_grad():
        mh, mw = rpn_cls[0].new_tensor(float(img_h)), rpn_cls[0].new_tensor(float(img_w))
        for b in range(rpn_cls[0].shape[0]):
            s_all, b_all, i_all = [], [], []
            for lvl, (c, r) in enumerate(zip(rpn_cls, rpn_reg)):
                s = c[b].permute(1, 2, 0).reshape(-1).float().sigmoid()
                d = r[b].permute(1, 2, 0).reshape(-1, 4).float()
                a = model.rpn_head.grid_anchors(lvl, c.shape[2], c.shape[3])
                k = min(nms_pre, s.numel())
                s, idx = s.topk(k)
                s_all.append(s)
                b_all.append(delta2bbox(a[idx], d[idx], (1.0, 1.0, 1.0, 1.0), mh, mw))
                i_all.append(torch.full_like(s, lvl, dtype=torch.long))
            s, bx, ids = torch.cat(s_all), torch.cat(b_all), torch.cat(i_all)
            kept = torchvision.ops.batched_nms(bx, s, ids, 0.7)[:keep]
            out.append(bx[kept])
    return out


def detector_losses(model, x, targets, gen):
    """targets: per image dict(boxes [n, 4] float, labels [n] long, masks [n, H, W] uint8 on the
    padded input's grid)."""
    B, _, H, W = x.shape
    feats = model.extract_feat(x)
    rpn_cls, rpn_reg = model.rpn_head(feats)
    anchors = all_anchors(model, feats)
    cls_flat = torch.cat([c.permute(0, 2, 3, 1).reshape(B, -1) for c in rpn_cls], 1).float()
    reg_flat = torch.cat([r.permute(0, 2, 3, 1).reshape(B, -1, 4) for r in rpn_reg], 1).float()
    losses = dict(rpn_cls=0.0, rpn_bbox=0.0, cls=0.0, bbox=0.0, mask=0.0)
    for b, t in enumerate(targets):
        a = assign(anchors, t["boxes"], 0.7, 0.3, 0.3)
        pos, neg = sample(a, 256, 0.5, gen)
        n = max(pos.numel() + neg.numel(), 1)
        lbl = torch.cat([torch.ones_like(pos), torch.zeros_like(neg)]).float()
        losses["rpn_cls"] = losses["rpn_cls"] + F.binary_cross_entropy_with_logits(cls_flat[b, torch.cat([pos, neg])], lbl, reduction="sum") / n
        if pos.numel():
            tgt = bbox2delta(anchors[pos], t["boxes"][a[pos]], (1.0, 1.0, 1.0, 1.0))
            losses["rpn_bbox"] = losses["rpn_bbox"] + F.l1_loss(reg_flat[b, pos], tgt, reduction="sum") / n
    props = proposals_for_training(model, rpn_cls, rpn_reg, H, W)
    rois, labels, deltas, pos_rois, pos_labels, mask_targets, n_sampled = [], [], [], [], [], [], 0
    for b, t in enumerate(targets):
        p = torch.cat([props[b], t["boxes"]])  # ground truth as proposals
        a = assign(p, t["boxes"], 0.5, 0.5, 0.5)
        pos, neg = sample(a, 512, 0.25, gen)
        idx = torch.cat([pos, neg])
        n_sampled += idx.numel()
        lab = torch.full((idx.numel(),), model.num_classes, dtype=torch.long, device=x.device)
        lab[:pos.numel()] = t["labels"][a[pos]]
        rois.append(torch.cat([p.new_full((idx.numel(), 1), b), p[idx]], 1))
        labels.append(lab)
        deltas.append(bbox2delta(p[pos], t["boxes"][a[pos]], (0.1, 0.1, 0.2, 0.2)))
        if pos.numel():
            pos_rois.append(torch.cat([p.new_full((pos.numel(), 1), b), p[pos]], 1))
            pos_labels.append(t["labels"][a[pos]])
            gm = t["masks"][a[pos]].float()[:, None]  # [P, 1, H, W]
            boxes = torch.cat([torch.arange(pos.numel(), device=x.device, dtype=p.dtype)[:, None], p[pos]], 1)
            mask_targets.append((torchvision.ops.roi_align(gm, boxes, 28, 1.0, 0, True)[:, 0] >= 0.5).float())
    rois, labels = torch.cat(rois), torch.cat(labels)
    cls_score, bbox_pred = model.roi_head.bbox_head(model.roi_feats(feats[:4], rois, 7, True))
    losses["cls"] = F.cross_entropy(cls_score.float(), labels, reduction="sum") / max(n_sampled, 1)
    is_pos = labels < model.num_classes
    if is_pos.any():
        pred = bbox_pred.float().view(-1, model.num_classes, 4)[is_pos, labels[is_pos]]
        losses["bbox"] = F.l1_loss(pred, torch.cat(deltas), reduction="sum") / max(n_sampled, 1)
        pr = torch.cat(pos_rois)
        mask_logits = model.roi_head.mask_head(model.roi_feats(feats[:4], pr, 14, True)).float()
        pl = torch.cat(pos_labels)
        losses["mask"] = F.binary_cross_entropy_with_logits(mask_logits[torch.arange(pl.numel()), pl], torch.cat(mask_targets))
    losses = {k: v / (B if k.startswith("rpn") else 1) for k, v in losses.items()}
    return losses


def targets_from_coco(anns, meta, H, W, device):
    """COCO annotations of one image -> boxes/labels/masks on the resized, padded input grid."""
    from pycocotools import mask as mask_util
    boxes, labels, masks = [], [], []
    for a in anns:
        m = mask_util.decode(a["segmentation"])
        mt = torch.from_numpy(m)[None, None].to(device).float()
        mt = F.interpolate(mt, size=(meta["new_h"], meta["new_w"]), mode="bilinear", align_corners=False)[0, 0] >= 0.5
        if mt.sum() < 4:
            continue
        full = torch.zeros(H, W, dtype=torch.uint8, device=device)
        full[:meta["new_h"], :meta["new_w"]] = mt
        ys, xs = torch.nonzero(full, as_tuple=True)
        boxes.append([xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1])
        labels.append(a["category_id"] - 1)
        masks.append(full)
    return dict(boxes=torch.tensor(boxes, dtype=torch.float32, device=device).reshape(-1, 4),
                labels=torch.tensor(labels, dtype=torch.long, device=device),
                masks=torch.stack(masks).to(device) if masks else torch.zeros(0, H, W, dtype=torch.uint8, device=device))


def preprocess(images, long_edge, short_edge, divisor=32, device="cpu"):
    """The same numbers as `unirt detect` (tools/detection.cpp): bilinear resize rounded to 8 bits,
    normalised, padded to a multiple of 32; returns the batch and each image's resize. (On the GPU
    for training; evaluation resizes on the CPU, where a .5 rounds as the C++ code rounds it.)"""
    mean = torch.tensor([123.675, 116.28, 103.53], device=device)[:, None, None]
    std = torch.tensor([58.395, 57.12, 57.375], device=device)[:, None, None]
    out, metas = [], []
    for img in images:
        h, w = img.shape[:2]
        scale = min(max(long_edge, short_edge) / max(h, w), min(long_edge, short_edge) / min(h, w))
        nw, nh = max(1, int(w * scale + 0.5)), max(1, int(h * scale + 0.5))
        t = torch.from_numpy(np.ascontiguousarray(img)).to(device).permute(2, 0, 1)[None].float()
        r = torch.floor(F.interpolate(t, size=(nh, nw), mode="bilinear", align_corners=False) + 0.5)[0]
        out.append((r - mean) / std)
        metas.append(dict(ori_h=h, ori_w=w, new_h=nh, new_w=nw, w_scale=nw / w, h_scale=nh / h))
    H = -(-max(o.shape[1] for o in out) // divisor) * divisor
    W = -(-max(o.shape[2] for o in out) // divisor) * divisor
    x = torch.zeros(len(out), 3, H, W, device=device)
    for i, o in enumerate(out):
        x[i, :, :o.shape[1], :o.shape[2]] = o
    return x, metas


def train(model, coco, images, iters, batch, lr, long_edge, short_edge, seed=0, log=print, device="cuda", max_seconds=None):
    """coco: the train split's COCO dict; images: decoded uint8 arrays in its image order. The
    schedule is by iteration (seeded, reproducible); max_seconds stops it early as a safety net
    (the log says so). Returns the model; model.trained_iters holds the iterations run."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    by_image = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    order = np.random.default_rng(seed).permutation(len(images))
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim > 1]
    no_decay = [p for p in params if p.ndim <= 1]
    opt = torch.optim.AdamW([dict(params=decay, weight_decay=0.05), dict(params=no_decay, weight_decay=0.0)], lr=lr, betas=(0.9, 0.999))
    warmup = min(200, iters // 5)
    model.train()
    t0 = time.time()
    model.trained_iters = 0
    for it in range(iters):
        if max_seconds is not None and time.time() - t0 > max_seconds:
            log(f"stopped at iteration {it} of {iters}: the {max_seconds:.0f} s budget is spent")
            break
        scale = (it + 1) / warmup if it < warmup else 0.5 * (1 + math.cos(math.pi * (it - warmup) / max(1, iters - warmup)))
        for g in opt.param_groups:
            g["lr"] = lr * scale
        idx = [order[(it * batch + k) % len(order)] for k in range(batch)]
        x, metas = preprocess([images[i] for i in idx], long_edge, short_edge, device=device)
        targets = [targets_from_coco(by_image.get(coco["images"][i]["id"], []), m, x.shape[2], x.shape[3], device)
                   for i, m in zip(idx, metas)]
        with torch.autocast(device_type="cuda" if device == "cuda" else "cpu", dtype=torch.bfloat16, enabled=device == "cuda"):
            losses = detector_losses(model, x, targets, gen)
        loss = sum(losses.values())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        opt.step()
        model.trained_iters = it + 1
        if it % 50 == 0 or it == iters - 1:
            log(f"iter {it:5d}/{iters}  loss {float(loss):.3f}  " + "  ".join(f"{k} {float(v):.3f}" for k, v in losses.items()) +
                f"  lr {lr * scale:.2e}  {time.time() - t0:.0f} s")
    model.eval()
    return model


def coco_results(model, images, image_ids, long_edge, short_edge, batch=8, device="cuda", category_offset=1):
    """PyTorch FP32 detections on the original images, in COCO results format (mmdetection's
    rescale and CPU paste, as `unirt detect` does)."""
    from pycocotools import mask as mask_util
    res = []
    model.eval()
    for s in range(0, len(images), batch):
        x, metas = preprocess(images[s:s + batch], long_edge, short_edge)
        with torch.no_grad():
            out = model.simple_test(x.to(device))
        for k, (r, m) in enumerate(zip(out, metas)):
            dets, labels, masks = r["dets"].cpu(), r["labels"].cpu(), r["masks"].cpu()
            for d, l, mk in zip(dets, labels, masks):
                x0 = float(d[0].clamp(0, m["new_w"])) / m["w_scale"]
                y0 = float(d[1].clamp(0, m["new_h"])) / m["h_scale"]
                x1 = float(d[2].clamp(0, m["new_w"])) / m["w_scale"]
                y1 = float(d[3].clamp(0, m["new_h"])) / m["h_scale"]
                full = paste_mask_cpu(mk, (x0, y0, x1, y1), m["ori_h"], m["ori_w"])
                rle = mask_util.encode(np.asfortranarray(full.astype(np.uint8)))
                res.append(dict(image_id=image_ids[s + k], category_id=int(l) + category_offset, score=float(d[4]),
                                bbox=[x0, y0, x1 - x0, y1 - y0], segmentation=dict(size=list(rle["size"]), counts=rle["counts"].decode())))
    return res


def paste_mask_cpu(mask, box, h, w, thr=0.5):
    """mmdetection's _do_paste_mask on the CPU (skip_empty): grid_sample over the box's region."""
    x0, y0, x1, y1 = box
    out = np.zeros((h, w), bool)
    rx0, ry0 = max(int(math.floor(x0)) - 1, 0), max(int(math.floor(y0)) - 1, 0)
    rx1, ry1 = min(int(math.ceil(x1)) + 1, w), min(int(math.ceil(y1)) + 1, h)
    if rx1 <= rx0 or ry1 <= ry0:
        return out
    img_y = (torch.arange(ry0, ry1, dtype=torch.float32) + 0.5 - y0) / (y1 - y0) * 2 - 1
    img_x = (torch.arange(rx0, rx1, dtype=torch.float32) + 0.5 - x0) / (x1 - x0) * 2 - 1
    img_x[torch.isinf(img_x)] = 0
    img_y[torch.isinf(img_y)] = 0
    grid = torch.stack([img_x[None, :].expand(len(img_y), len(img_x)), img_y[:, None].expand(len(img_y), len(img_x))], dim=2)
    out[ry0:ry1, rx0:rx1] = (F.grid_sample(mask[None, None].float(), grid[None], align_corners=False)[0, 0] >= thr).numpy()
    return out


def coco_map(gt_json, results):
    """pycocotools box and mask AP (0.5:0.95) and AP50."""
    import contextlib
    import io

    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(gt_json)
        if not results:
            return dict(bbox=0.0, bbox50=0.0, segm=0.0, segm50=0.0)
        dt = gt.loadRes(results)
        for kind in ("bbox", "segm"):
            e = COCOeval(gt, dt, kind)
            e.evaluate()
            e.accumulate()
            e.summarize()
            out[kind], out[kind + "50"] = float(e.stats[0]), float(e.stats[1])
    return out
