"""UniFormer Mask R-CNN as in the official Sense-X detection config (mmdetection 2.11 semantics).

`configs/_base_/models/mask_rcnn_uniformer_fpn.py` + `exp/mask_rcnn_1x_hybrid_{small,base}/config.py`:
hybrid UniFormer backbone (window 14), FPN (64/128/320/512 -> 256, 5 levels), RPN head, RoIAlign 7/14
(sampling_ratio 0, aligned), Shared2FC box head, FCN mask head. Module and parameter names are
mmdetection's, so an official checkpoint (weights under `state_dict`) loads with `strict=True`.

Two test-time forwards, plain PyTorch + torchvision.ops (no mmcv/mmdet):

* `simple_test(x)` follows mmdetection's `MaskRCNN.simple_test` image by image: per-level sort and
  top-1000, delta decoding clipped to the input, level-separated NMS (IoU 0.7, 1000 kept), RoIAlign
  of each RoI on its level only, softmax scores, class-specific decoding, score > 0.05, class-separated
  NMS (IoU 0.5, 100 kept), mask head on the kept boxes. It is the reference.
* `forward(x)` is the same computation batched with fixed-size intermediate tensors, written with ops
  that export to standard ONNX (TopK, NonMaxSuppression, RoiAlign, ScatterND, GatherElements, ...);
  outputs follow mmdeploy: `dets [N, 100, 5]` (x0, y0, x1, y1, score), `labels [N, 100]` (-1 where
  padded), `masks [N, 100, 28, 28]` (sigmoid probabilities in the box, 0 where padded) and
  `num_dets [N]`. Boxes are in input-tensor pixels and clipped to the input tensor (as mmdeploy
  does; mmdetection clips to the unpadded resized image, which only differs inside the padding).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

from .uniformer import UniFormerDet

COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard",
    "cell phone", "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase",
    "scissors", "teddy bear", "hair drier", "toothbrush")

# test_cfg of the config, exactly.
TEST_CFG = dict(rpn_nms_pre=1000, rpn_max_per_img=1000, rpn_iou=0.7,
                rcnn_score_thr=0.05, rcnn_iou=0.5, rcnn_max_per_img=100, mask_thr_binary=0.5)
FEATMAP_STRIDES = (4, 8, 16, 32)
ANCHOR_STRIDES = (4, 8, 16, 32, 64)
FINEST_SCALE = 56
WH_RATIO_CLIP = 16 / 1000


class ConvModule(nn.Module):
    """mmcv's ConvModule without a norm: `conv` (with bias) and an optional ReLU."""

    def __init__(self, cin, cout, k, padding=0, relu=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=padding)
        self.with_relu = relu

    def forward(self, x):
        x = self.conv(x)
        return F.relu(x) if self.with_relu else x


class FPN(nn.Module):
    """1x1 laterals, nearest-upsampled top-down sums, 3x3 outputs, a 5th level by max_pool2d(1, 2)."""

    def __init__(self, in_channels=(64, 128, 320, 512), out_channels=256, num_outs=5):
        super().__init__()
        self.lateral_convs = nn.ModuleList([ConvModule(c, out_channels, 1, relu=False) for c in in_channels])
        self.fpn_convs = nn.ModuleList([ConvModule(out_channels, out_channels, 3, 1, relu=False)
                                        for _ in in_channels])
        self.num_outs = num_outs

    def forward(self, inputs):
        laterals = [conv(x) for conv, x in zip(self.lateral_convs, inputs)]
        for i in range(len(laterals) - 1, 0, -1):
            laterals[i - 1] = laterals[i - 1] + F.interpolate(laterals[i], size=laterals[i - 1].shape[2:],
                                                              mode="nearest")
        outs = [conv(x) for conv, x in zip(self.fpn_convs, laterals)]
        for _ in range(self.num_outs - len(outs)):
            outs.append(F.max_pool2d(outs[-1], 1, stride=2))
        return tuple(outs)


def base_anchors(stride, scales=(8.0,), ratios=(0.5, 1.0, 2.0)):
    """mmdetection's AnchorGenerator.gen_single_level_base_anchors (center_offset 0, scale_major)."""
    ratios = torch.tensor(ratios)
    scales = torch.tensor(scales)
    h_ratios = torch.sqrt(ratios)
    w_ratios = 1 / h_ratios
    ws = (stride * w_ratios[:, None] * scales[None, :]).view(-1)
    hs = (stride * h_ratios[:, None] * scales[None, :]).view(-1)
    return torch.stack([-0.5 * ws, -0.5 * hs, 0.5 * ws, 0.5 * hs], dim=-1)


class RPNHead(nn.Module):
    def __init__(self, in_channels=256, feat_channels=256, num_anchors=3):
        super().__init__()
        self.rpn_conv = nn.Conv2d(in_channels, feat_channels, 3, padding=1)
        self.rpn_cls = nn.Conv2d(feat_channels, num_anchors, 1)
        self.rpn_reg = nn.Conv2d(feat_channels, num_anchors * 4, 1)
        for i, s in enumerate(ANCHOR_STRIDES):
            self.register_buffer(f"base_anchors{i}", base_anchors(s), persistent=False)

    def forward(self, feats):
        cls, reg = [], []
        for x in feats:
            x = F.relu(self.rpn_conv(x))
            cls.append(self.rpn_cls(x))
            reg.append(self.rpn_reg(x))
        return cls, reg

    def grid_anchors(self, level, feat_h, feat_w):
        """Anchors of one level, [feat_h * feat_w * 3, 4], the 3 anchors of a cell adjacent."""
        stride = ANCHOR_STRIDES[level]
        base = getattr(self, f"base_anchors{level}")
        shift_x = torch.arange(feat_w, device=base.device).to(base.dtype) * stride
        shift_y = torch.arange(feat_h, device=base.device).to(base.dtype) * stride
        xx = shift_x[None, :].expand(feat_h, feat_w).reshape(-1)
        yy = shift_y[:, None].expand(feat_h, feat_w).reshape(-1)
        shifts = torch.stack([xx, yy, xx, yy], dim=-1)
        return (base[None, :, :] + shifts[:, None, :]).reshape(-1, 4)


class Shared2FCBBoxHead(nn.Module):
    def __init__(self, in_channels=256, roi_feat_size=7, fc_out_channels=1024, num_classes=80):
        super().__init__()
        self.shared_fcs = nn.ModuleList([nn.Linear(in_channels * roi_feat_size * roi_feat_size, fc_out_channels),
                                         nn.Linear(fc_out_channels, fc_out_channels)])
        self.fc_cls = nn.Linear(fc_out_channels, num_classes + 1)
        self.fc_reg = nn.Linear(fc_out_channels, num_classes * 4)
        self.num_classes = num_classes

    def forward(self, x):
        x = x.flatten(1)
        for fc in self.shared_fcs:
            x = F.relu(fc(x))
        return self.fc_cls(x), self.fc_reg(x)


class FCNMaskHead(nn.Module):
    def __init__(self, num_convs=4, in_channels=256, conv_out_channels=256, num_classes=80):
        super().__init__()
        self.convs = nn.ModuleList([ConvModule(in_channels if i == 0 else conv_out_channels, conv_out_channels,
                                               3, padding=1) for i in range(num_convs)])
        self.upsample = nn.ConvTranspose2d(conv_out_channels, conv_out_channels, 2, stride=2)
        self.conv_logits = nn.Conv2d(conv_out_channels, num_classes, 1)

    def forward(self, x):
        for conv in self.convs:
            x = conv(x)
        return self.conv_logits(F.relu(self.upsample(x)))


class StandardRoIHead(nn.Module):
    def __init__(self, num_classes=80):
        super().__init__()
        self.bbox_head = Shared2FCBBoxHead(num_classes=num_classes)
        self.mask_head = FCNMaskHead(num_classes=num_classes)


def delta2bbox(rois, deltas, stds, max_h, max_w):
    """mmdetection's DeltaXYWHBBoxCoder.decode (means 0, wh_ratio_clip 16/1000), clipped to
    x in [0, max_w], y in [0, max_h]. rois [..., 4], deltas [..., 4]. The same arithmetic per
    coordinate as mmdetection's, on (x, y) pairs, which exports as a dozen ops instead of forty."""
    d = deltas * deltas.new_tensor(stds)
    max_ratio = abs(math.log(WH_RATIO_CLIP))
    d_xy, d_wh = d[..., :2], d[..., 2:].clamp(min=-max_ratio, max=max_ratio)
    centre = (rois[..., :2] + rois[..., 2:]) * 0.5
    size = rois[..., 2:] - rois[..., :2]
    g_xy = centre + size * d_xy
    g_wh = size * d_wh.exp()
    lo = (g_xy - g_wh * 0.5).clamp(min=0)
    hi = (g_xy + g_wh * 0.5).clamp(min=0)
    if max_w is not None:
        bound = torch.stack([max_w, max_h])
        lo, hi = torch.min(lo, bound), torch.min(hi, bound)
    return torch.cat([lo, hi], dim=-1)


def map_roi_levels(boxes, num_levels=4):
    """SingleRoIExtractor.map_roi_levels: floor(log2(sqrt(w * h) / 56 + 1e-6)) clamped to 0..3."""
    scale = torch.sqrt((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]))
    return torch.floor(torch.log2(scale / FINEST_SCALE + 1e-6)).clamp(min=0, max=num_levels - 1)


class _BatchedNMS(torch.autograd.Function):
    """ONNX NonMaxSuppression (one class per box set): boxes [B, N, 4] as (x0, y0, x1, y1), scores
    [B, 1, N] -> selected [M, 3] (batch, 0, box), per batch in descending score, at most `max_out`
    each, a box kept only if its score > `score_thr` (when given) and its IoU with every kept box is
    <= `iou`. The eager forward is torchvision's nms per batch item."""

    @staticmethod
    def forward(ctx, boxes, scores, max_out, iou, score_thr):
        out = []
        for b in range(boxes.shape[0]):
            s = scores[b, 0]
            cand = torch.nonzero(s > score_thr).squeeze(1) if score_thr is not None else \
                torch.arange(s.shape[0], device=s.device)
            keep = cand[torchvision.ops.nms(boxes[b, cand], s[cand], iou)][:max_out]
            out.append(torch.stack([torch.full_like(keep, b), torch.zeros_like(keep), keep], dim=1))
        return torch.cat(out, 0)

    @staticmethod
    def symbolic(g, boxes, scores, max_out, iou, score_thr):
        args = [boxes, scores, g.op("Constant", value_t=torch.tensor([max_out], dtype=torch.long)),
                g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float))]
        if score_thr is not None:
            args.append(g.op("Constant", value_t=torch.tensor([score_thr], dtype=torch.float)))
        return g.op("NonMaxSuppression", *args, center_point_box_i=0)


def _pad_selected(sel, batch, k):
    """Rows of NonMaxSuppression's output -> (batch index, rank within its batch item) and the
    count per batch item. Rows of one batch item are contiguous and in kept order."""
    b = sel[:, 0]
    first = (b[None, :] < torch.arange(batch, device=sel.device)[:, None]).sum(1)  # [B]
    counts = (b[None, :] == torch.arange(batch, device=sel.device)[:, None]).sum(1)
    rank = torch.arange(sel.shape[0], device=sel.device) - first[b]
    return b, rank, counts


class MaskRCNN(nn.Module):
    def __init__(self, backbone=None, num_classes=80, test_cfg=None):
        super().__init__()
        self.backbone = backbone if backbone is not None else UniFormerDet(hybrid=True)
        self.neck = FPN()
        self.rpn_head = RPNHead()
        self.roi_head = StandardRoIHead(num_classes)
        self.num_classes = num_classes
        self.test_cfg = dict(TEST_CFG, **(test_cfg or {}))
        self.debug_outputs = False  # forward() also returns the tensors before each NMS (DEBUG_OUTPUTS)
        self.proposal_stage, self.box_stage, self.mask_stage = _Stage(), _Stage(), _Stage()

    # ---- shared pieces ----
    def extract_feat(self, x):
        return self.neck(self.backbone(x))

    def roi_feats(self, feats, rois, out_size, by_level_only):
        """RoIAlign (aligned, sampling_ratio 0) of each RoI [R, 5] on its level of feats[0..3].
        by_level_only: gather each level's RoIs (mmdetection's path); else every level for every RoI,
        masked and summed (mmdetection's ONNX path: same numbers, static shapes)."""
        levels = map_roi_levels(rois[:, 1:])
        if by_level_only:
            out = feats[0].new_zeros(rois.shape[0], feats[0].shape[1], out_size, out_size)
            for i, stride in enumerate(FEATMAP_STRIDES):
                inds = torch.nonzero(levels == i).squeeze(1)
                if inds.numel():  # (roi_align runs in float32 under autocast)
                    out[inds] = torchvision.ops.roi_align(feats[i], rois[inds], out_size, 1.0 / stride, 0, True).to(out.dtype)
            return out
        out = None
        for i, stride in enumerate(FEATMAP_STRIDES):
            t = torchvision.ops.roi_align(feats[i], rois, out_size, 1.0 / stride, 0, True)
            t = t * (levels == i).to(t.dtype)[:, None, None, None]
            out = t if out is None else out + t
        return out

    # ---- the reference: mmdetection's simple_test, image by image ----
    @torch.no_grad()
    def simple_test(self, x):
        """Per image: dict(dets [k, 5], labels [k], masks [k, 28, 28]) in input-tensor pixels."""
        cfg = self.test_cfg
        feats = self.extract_feat(x)
        rpn_cls, rpn_reg = self.rpn_head(feats)
        H, W = x.shape[2], x.shape[3]
        max_h, max_w = x.new_tensor(float(H)), x.new_tensor(float(W))
        results = []
        for b in range(x.shape[0]):
            scores, boxes, ids = [], [], []
            for lvl, (c, r) in enumerate(zip(rpn_cls, rpn_reg)):
                s = c[b].permute(1, 2, 0).reshape(-1).sigmoid()
                d = r[b].permute(1, 2, 0).reshape(-1, 4)
                a = self.rpn_head.grid_anchors(lvl, c.shape[2], c.shape[3])
                if s.shape[0] > cfg["rpn_nms_pre"]:
                    s, order = s.sort(descending=True)
                    s, order = s[:cfg["rpn_nms_pre"]], order[:cfg["rpn_nms_pre"]]
                    d, a = d[order], a[order]
                scores.append(s)
                boxes.append(delta2bbox(a, d, (1.0, 1.0, 1.0, 1.0), max_h, max_w))
                ids.append(torch.full_like(s, lvl, dtype=torch.long))
            scores, boxes, ids = torch.cat(scores), torch.cat(boxes), torch.cat(ids)
            keep = torchvision.ops.batched_nms(boxes, scores, ids, cfg["rpn_iou"])[:cfg["rpn_max_per_img"]]
            proposals = boxes[keep]
            img_feats = [f[b:b + 1] for f in feats[:4]]
            rois = torch.cat([proposals.new_zeros(proposals.shape[0], 1), proposals], 1)
            cls_score, bbox_pred = self.roi_head.bbox_head(self.roi_feats(img_feats, rois, 7, True))
            prob = F.softmax(cls_score, -1)[:, :-1]
            n = prob.shape[0]
            cand = delta2bbox(proposals[:, None, :].expand(n, self.num_classes, 4),
                              bbox_pred.view(n, self.num_classes, 4), (0.1, 0.1, 0.2, 0.2), max_h, max_w)
            cand, prob = cand.reshape(-1, 4), prob.reshape(-1)
            labels = torch.arange(self.num_classes, device=x.device).repeat(n)
            valid = torch.nonzero(prob > cfg["rcnn_score_thr"]).squeeze(1)
            cand, prob, labels = cand[valid], prob[valid], labels[valid]
            keep = torchvision.ops.batched_nms(cand, prob, labels, cfg["rcnn_iou"])[:cfg["rcnn_max_per_img"]]
            dets = torch.cat([cand[keep], prob[keep, None]], 1)
            labels = labels[keep]
            if dets.shape[0]:
                mrois = torch.cat([dets.new_zeros(dets.shape[0], 1), dets[:, :4]], 1)
                mask_pred = self.roi_head.mask_head(self.roi_feats(img_feats, mrois, 14, True))
                masks = mask_pred[torch.arange(dets.shape[0]), labels].sigmoid()
            else:
                masks = dets.new_zeros(0, 28, 28)
            results.append(dict(dets=dets, labels=labels, masks=masks))
        return results

    # ---- the exported forward: batched, fixed-size, standard ONNX ops ----
    def forward(self, x):
        B = x.shape[0]
        if torch.onnx.is_in_onnx_export():  # traced as Shape: the engine takes any H/W
            hw = torch._shape_as_tensor(x)[2:4].to(x.dtype)
        else:  # eager and torch.compile: plain numbers on the input's device
            hw = x.new_tensor([float(x.shape[2]), float(x.shape[3])])
        max_h, max_w = hw[0], hw[1]
        feats = self.extract_feat(x)
        rpn_cls, rpn_reg = self.rpn_head(feats)
        proposals, valid, all_scores, all_deltas = self.proposal_stage(self.rpn_proposals, rpn_cls, rpn_reg, B, max_h, max_w)
        dets, labels, num_dets, cls_score, bbox_pred = self.box_stage(self.detect, feats, proposals, valid, max_h, max_w)
        masks = self.mask_stage(self.segment, feats, dets, labels)
        if self.debug_outputs:  # the tensors before each NMS, for parity checks
            K = proposals.shape[1]
            return (dets, labels, masks, num_dets, all_scores, all_deltas, torch.cat([proposals, valid[..., None]], 2),
                    cls_score.reshape(B, K, -1), bbox_pred.reshape(B, K, -1))
        return dets, labels, masks, num_dets

    def rpn_proposals(self, rpn_cls, rpn_reg, B, max_h, max_w):
        """Per level the top nms_pre scores, decoded; one NMS with the levels kept apart by
        coordinate offsets; the kept boxes padded to [B, 1000, 4] with a validity mask."""
        cfg = self.test_cfg
        scores, boxes, ids, all_scores, all_deltas = [], [], [], [], []
        for lvl, (c, r) in enumerate(zip(rpn_cls, rpn_reg)):
            s = c.permute(0, 2, 3, 1).reshape(B, -1).sigmoid()
            d = r.permute(0, 2, 3, 1).reshape(B, -1, 4)
            all_scores.append(s)
            all_deltas.append(d)
            a = self.rpn_head.grid_anchors(lvl, c.shape[2], c.shape[3])
            if torch.onnx.is_in_onnx_export():  # the level's size is the input's: a Shape, not a constant
                k = torch.clamp(torch._shape_as_tensor(s)[1], max=cfg["rpn_nms_pre"])
            else:
                k = min(s.shape[1], cfg["rpn_nms_pre"])
            s, idx = s.topk(k, dim=1)
            scores.append(s)
            boxes.append((a[idx], torch.gather(d, 1, idx[..., None].expand(-1, -1, 4))))
            ids.append(torch.full_like(s, float(lvl)))
        # Decoded once over all levels, as mmdetection does.
        boxes = delta2bbox(torch.cat([b[0] for b in boxes], 1), torch.cat([b[1] for b in boxes], 1), (1.0, 1.0, 1.0, 1.0),
                           max_h, max_w)
        scores, ids = torch.cat(scores, 1), torch.cat(ids, 1)
        offsets = ids * (boxes.flatten(1).max(dim=1, keepdim=True).values + 1)
        sel = _BatchedNMS.apply(boxes + offsets[..., None], scores[:, None, :], cfg["rpn_max_per_img"],
                                cfg["rpn_iou"], None)
        K = cfg["rpn_max_per_img"]
        b, rank, _ = _pad_selected(sel, B, K)
        proposals = boxes.new_zeros(B, K, 4)
        proposals[b, rank] = boxes[b, sel[:, 2]]
        valid = boxes.new_zeros(B, K)
        valid[b, rank] = 1.0
        return proposals, valid, torch.cat(all_scores, 1), torch.cat(all_deltas, 1)

    def detect(self, feats, proposals, valid, max_h, max_w):
        """Box head on every (padded) proposal: padding scores 0, so the score threshold drops it;
        class-specific decoding, one NMS with the classes kept apart by offsets, top 100."""
        cfg = self.test_cfg
        B, K = proposals.shape[0], proposals.shape[1]
        batch_col = torch.arange(B, device=proposals.device).to(proposals.dtype)[:, None, None].expand(B, K, 1)
        rois = torch.cat([batch_col, proposals], 2).reshape(-1, 5)
        cls_score, bbox_pred = self.roi_head.bbox_head(self.roi_feats(feats[:4], rois, 7, False))
        C = self.num_classes
        prob = F.softmax(cls_score, -1)[:, :C].reshape(B, K, C) * valid[..., None]
        cand = delta2bbox(proposals[:, :, None, :].expand(B, K, C, 4), bbox_pred.reshape(B, K, C, 4),
                          (0.1, 0.1, 0.2, 0.2), max_h, max_w).reshape(B, K * C, 4)
        prob = prob.reshape(B, K * C)
        labels_all = torch.arange(C, device=proposals.device).to(proposals.dtype).repeat(K)
        offsets = labels_all[None, :] * (cand.flatten(1).max(dim=1, keepdim=True).values + 1)
        sel = _BatchedNMS.apply(cand + offsets[..., None], prob[:, None, :], cfg["rcnn_max_per_img"],
                                cfg["rcnn_iou"], cfg["rcnn_score_thr"])
        D = cfg["rcnn_max_per_img"]
        b, rank, num_dets = _pad_selected(sel, B, D)
        i = sel[:, 2]
        dets = proposals.new_zeros(B, D, 5)
        dets[b, rank] = torch.cat([cand[b, i], prob[b, i][:, None]], 1)
        labels = torch.full((B, D), -1, dtype=torch.long, device=proposals.device)
        labels[b, rank] = i % C
        return dets, labels, num_dets, cls_score, bbox_pred

    def segment(self, feats, dets, labels):
        """Mask head on the kept boxes: the 28x28 probabilities of each box's own class."""
        B, D = dets.shape[0], dets.shape[1]
        batch_col = torch.arange(B, device=dets.device).to(dets.dtype)[:, None, None].expand(B, D, 1)
        mrois = torch.cat([batch_col, dets[..., :4]], 2).reshape(-1, 5)
        mask_pred = self.roi_head.mask_head(self.roi_feats(feats[:4], mrois, 14, False))
        pick = labels.clamp(min=0).reshape(-1)[:, None, None, None].expand(-1, 1, 28, 28)
        det_valid = (labels >= 0).to(dets.dtype)
        return torch.gather(mask_pred, 1, pick).sigmoid().reshape(B, D, 28, 28) * det_valid[..., None, None]


class _Stage(nn.Module):
    """A parameterless scope: what it runs is named after it in the ONNX graph (proposal_stage/...,
    box_stage/..., mask_stage/...), so per-layer profiles group by stage."""

    def forward(self, fn, *args):
        return fn(*args)


_DETECTORS = {
    "uniformer_small_mask_rcnn": dict(layers=(3, 4, 8, 3)),
    "uniformer_base_mask_rcnn": dict(layers=(5, 8, 20, 7)),
}
MASK_RCNN_NAMES = list(_DETECTORS)
OUTPUTS = ["dets", "labels", "masks", "num_dets"]
# With debug_outputs: RPN scores [N, anchors] and deltas [N, anchors, 4] of every level (anchor
# order: level, row, column, anchor), proposals [N, 1000, 5] (x0, y0, x1, y1, valid) and the box
# head's class logits [N, 1000, 81] and deltas [N, 1000, 320] for them.
DEBUG_OUTPUTS = ["rpn_scores", "rpn_deltas", "proposals", "cls_score", "bbox_pred"]


def create_mask_rcnn(name, **kwargs):
    """UniFormer-S/B h14 (hybrid, window 14) Mask R-CNN by name."""
    if name not in _DETECTORS:
        raise ValueError(f"unknown detector '{name}'; known: {', '.join(MASK_RCNN_NAMES)}")
    return MaskRCNN(UniFormerDet(hybrid=True, window_size=14, **_DETECTORS[name]), **kwargs)


@torch.no_grad()
def randomize_detector_(model, seed=0):
    """Seeded random weights that give a random detector something to detect: the backbone as the
    classifiers' randomize_, the rest with fan-in scaling, then each output layer rescaled on one
    seeded image so its outputs have a trained detector's spread (RPN logits std 1.5 and deltas 0.2,
    class logits 2.5 so softmax scores span (0, 1) instead of 1/81 under the 0.05 threshold, box
    deltas 0.5, mask logits 2)."""
    from .uniformer import randomize_
    randomize_(model.backbone, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for name, m in model.named_modules():
        if name.startswith("backbone"):
            continue
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.ConvTranspose2d)):
            w = m.weight
            fan_in = w.shape[0] * w.shape[2] * w.shape[3] // 4 if isinstance(m, nn.ConvTranspose2d) else w[0].numel()
            w.copy_(torch.randn(w.shape, generator=g) * (2.0 / fan_in) ** 0.5)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.02)
    x = torch.randn(1, 3, 256, 320, generator=g)
    feats = model.extract_feat(x)
    rh = model.roi_head
    boxes = torch.tensor([[0, 8, 8, 120, 100], [0, 40, 60, 300, 250], [0, 100, 20, 160, 90.]])

    def outputs():
        c, r = model.rpn_head(feats)
        cs, bp = rh.bbox_head(model.roi_feats(feats[:4], boxes, 7, False))
        mp = rh.mask_head(model.roi_feats(feats[:4], boxes, 14, False))
        return dict(rpn_cls=torch.cat([t.flatten() for t in c]), rpn_reg=torch.cat([t.flatten() for t in r]),
                    fc_cls=cs, fc_reg=bp, conv_logits=mp)

    layers = dict(rpn_cls=model.rpn_head.rpn_cls, rpn_reg=model.rpn_head.rpn_reg, fc_cls=rh.bbox_head.fc_cls,
                  fc_reg=rh.bbox_head.fc_reg, conv_logits=rh.mask_head.conv_logits)
    target = dict(rpn_cls=1.5, rpn_reg=0.2, fc_cls=2.5, fc_reg=0.5, conv_logits=2.0)
    got = outputs()
    for k, layer in layers.items():
        layer.weight.mul_(target[k] / float(got[k].std()))
    return model
