"""UniFormer-XXS and -XS (the official `uniformer_light.py`): CBlocks in stages 1-2, then
EvoSABlocks that rank the patch tokens by the class token's attention, keep the top part, merge the
rest into one representative token, and restore the original order after the block.

Parameter names follow the official code, so its checkpoints load with strict=True. Inference
semantics are the official eval path; the differences are in how it is written, for export:
- the kept-token count is computed from the shape (`N * num // den`, num/den the prune ratio), not
  `int(N * ratio)`, which tracing would freeze at the export size;
- the running global attention and token order are passed between blocks instead of living in
  module globals, and in-place slice writes are written as concatenations (the official training
  path does the same);
- token indices travel as int64 beside the tokens (the official code concatenates them into the
  float tokens, which float16 cannot hold exactly beyond 2048).
"""
from fractions import Fraction

import torch
import torch.nn as nn

from .layers import CBlock, HeadEmbedding, LayerNorm6, Mlp, PatchEmbed


def gather_tokens(x, indices):
    """x [B, N, C] (or [B, N]) reordered along N by indices [B, M]."""
    if x.dim() == 2:
        return torch.gather(x, 1, indices)
    return torch.gather(x, 1, indices.unsqueeze(-1).expand(-1, -1, x.shape[-1]))


class EvoAttention(nn.Module):
    """Multi-head attention that also updates the global token ranking from the class token's row."""

    def __init__(self, dim, num_heads, qkv_bias=True, trade_off=1.0):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.trade_off = trade_off

    def forward(self, x, global_attn, pruned):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        if global_attn is None:  # first block of the stage: the class token's attention ranks every token
            global_attn = attn[:, :, 0, 1:].mean(dim=1)
        elif not pruned:
            global_attn = (1 - self.trade_off) * global_attn + self.trade_off * attn[:, :, 0, 1:].mean(dim=1)
        else:  # tokens are [cls, kept..., representative]: update the kept tokens' scores only
            kept = n - 2
            cls_attn = attn[:, :, 0, 1:-1].mean(dim=1)
            head = (1 - self.trade_off) * global_attn[:, :kept] + self.trade_off * cls_attn
            global_attn = torch.cat((head, global_attn[:, kept:]), dim=1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x), global_attn


class EvoSABlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=3.0, qkv_bias=True, prune_ratio=1.0, trade_off=0.0, downsample=False):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm6(dim)
        self.attn = EvoAttention(dim, num_heads, qkv_bias, trade_off)
        self.norm2 = LayerNorm6(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        ratio = Fraction(prune_ratio).limit_denominator(100)
        self.keep_num, self.keep_den = ratio.numerator, ratio.denominator
        self.prune = ratio != 1
        self.downsample = downsample
        if downsample:
            self.avgpool = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, cls_token, x, global_attn, token_indices):
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        if not self.prune:
            x = torch.cat((cls_token, x), dim=1)
            y, global_attn = self.attn(self.norm1(x), global_attn, pruned=False)
            x = x + y
            x = x + self.mlp(self.norm2(x))
            cls_token, x = x[:, :1], x[:, 1:]
            return cls_token, x.transpose(1, 2).reshape(b, c, h, w), global_attn, token_indices

        n = x.shape[1]
        kept = n * self.keep_num // self.keep_den  # from the shape: stays dynamic in the export
        order = torch.argsort(global_attn, dim=1, descending=True)
        x_sorted = gather_tokens(x, order)
        global_attn = gather_tokens(global_attn, order)
        token_indices = gather_tokens(token_indices, order)
        x_info, x_drop = x_sorted[:, :kept], x_sorted[:, kept:]
        score = global_attn[:, kept:]
        weight = score / score.sum(dim=1, keepdim=True)
        rep_token = (weight.unsqueeze(-1) * x_drop).sum(dim=1, keepdim=True)
        x = torch.cat((cls_token, x_info, rep_token), dim=1)
        y, global_attn = self.attn(self.norm1(x), global_attn, pruned=True)
        fast_update = y[:, -1:]
        x = x + y
        y = self.mlp(self.norm2(x))
        fast_update = fast_update + y[:, -1:]
        x = x + y
        # the dropped tokens get the representative token's update
        x_drop = x_drop + fast_update.expand(-1, n - kept, -1)
        cls_token, x = x[:, :1], x[:, 1:-1]
        x_sorted = torch.cat((x, x_drop), dim=1)

        old_scale = global_attn.sum(dim=1, keepdim=True)
        restore = torch.argsort(token_indices, dim=1)
        x_patch = gather_tokens(x_sorted, restore)
        global_attn = gather_tokens(global_attn, restore)
        token_indices = gather_tokens(token_indices, restore)
        x_patch = x_patch.transpose(1, 2).reshape(b, c, h, w)
        if self.downsample:
            global_attn = self.avgpool(global_attn.reshape(b, 1, h, w)).reshape(b, -1)
            global_attn = global_attn * (old_scale / global_attn.sum(dim=1, keepdim=True))
        return cls_token, x_patch, global_attn, token_indices


class UniFormerLight(nn.Module):
    """Classifier with token pruning in stages 3-4 (conv stem, patch embeddings 2-4, class token)."""

    def __init__(self, depth, embed_dim, head_dim, prune_ratio, trade_off, in_chans=3, num_classes=1000,
                 mlp_ratio=3.0, qkv_bias=True):
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed1 = HeadEmbedding(in_chans, embed_dim[0])
        self.patch_embed2 = PatchEmbed(2, embed_dim[0], embed_dim[1])
        self.patch_embed3 = PatchEmbed(2, embed_dim[1], embed_dim[2])
        self.patch_embed4 = PatchEmbed(2, embed_dim[2], embed_dim[3])
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim[2]))
        self.cls_upsample = nn.Linear(embed_dim[2], embed_dim[3])
        heads = [d // head_dim for d in embed_dim]
        self.blocks1 = nn.ModuleList([CBlock(embed_dim[0], mlp_ratio) for _ in range(depth[0])])
        self.blocks2 = nn.ModuleList([CBlock(embed_dim[1], mlp_ratio) for _ in range(depth[1])])
        self.blocks3 = nn.ModuleList([
            EvoSABlock(embed_dim[2], heads[2], mlp_ratio, qkv_bias, prune_ratio[2][i], trade_off[2][i],
                       downsample=i == depth[2] - 1) for i in range(depth[2])])
        self.blocks4 = nn.ModuleList([
            EvoSABlock(embed_dim[3], heads[3], mlp_ratio, qkv_bias, prune_ratio[3][i], trade_off[3][i])
            for i in range(depth[3])])
        self.norm = nn.BatchNorm2d(embed_dim[-1])
        self.norm_cls = nn.LayerNorm(embed_dim[-1])  # used in training only; kept for the checkpoints
        self.pre_logits = nn.Identity()
        self.head = nn.Linear(embed_dim[-1], num_classes)
        self.head_cls = nn.Linear(embed_dim[-1], num_classes)

    @staticmethod
    def _token_indices(x):
        n = x.shape[2] * x.shape[3]
        return torch.arange(n, dtype=torch.long, device=x.device).unsqueeze(0).expand(x.shape[0], -1)

    def forward_features(self, x):
        x = self.patch_embed1(x)
        for blk in self.blocks1:
            x = blk(x)
        x = self.patch_embed2(x)
        for blk in self.blocks2:
            x = blk(x)
        x = self.patch_embed3(x)
        cls_token = self.cls_token.expand(x.shape[0], -1, -1)
        global_attn, token_indices = None, self._token_indices(x)
        for blk in self.blocks3:
            cls_token, x, global_attn, token_indices = blk(cls_token, x, global_attn, token_indices)
        cls_token = self.cls_upsample(cls_token)
        x = self.patch_embed4(x)
        token_indices = self._token_indices(x)
        for blk in self.blocks4:
            cls_token, x, global_attn, token_indices = blk(cls_token, x, global_attn, token_indices)
        return cls_token, self.pre_logits(self.norm(x))

    def forward(self, x):
        _, x = self.forward_features(x)
        return self.head(x.flatten(2).mean(-1))


LIGHT_MODELS = {
    "uniformer_xxs": dict(depth=(2, 5, 8, 2), embed_dim=(56, 112, 224, 448), head_dim=28,
                          prune_ratio=[[], [], [1] + [0.5] * 7, [0.5] * 2], trade_off=[[], [], [1] + [0.5] * 7, [0.5] * 2]),
    "uniformer_xs": dict(depth=(3, 5, 9, 3), embed_dim=(64, 128, 256, 512), head_dim=32,
                         prune_ratio=[[], [], [1] + [0.5] * 8, [0.5] * 3], trade_off=[[], [], [1] + [0.5] * 8, [0.5] * 3]),
}
