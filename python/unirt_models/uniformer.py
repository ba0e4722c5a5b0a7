"""UniFormer image classifiers and the detection backbone, named as in Sense-X/UniFormer."""
import torch
import torch.nn as nn

from .layers import (CBlock, HeadEmbedding, LayerNorm6, MiddleEmbedding, PatchEmbed, SABlock,
                     SABlockWindows)
from .uniformer_light import LIGHT_MODELS, UniFormerLight


def _stem(conv_stem, embed_dim, in_chans):
    if conv_stem:
        return [HeadEmbedding(in_chans, embed_dim[0]), MiddleEmbedding(embed_dim[0], embed_dim[1]),
                MiddleEmbedding(embed_dim[1], embed_dim[2]), MiddleEmbedding(embed_dim[2], embed_dim[3])]
    return [PatchEmbed(4, in_chans, embed_dim[0]), PatchEmbed(2, embed_dim[0], embed_dim[1]),
            PatchEmbed(2, embed_dim[1], embed_dim[2]), PatchEmbed(2, embed_dim[2], embed_dim[3])]


class UniFormer(nn.Module):
    """Classifier: four stages (CBlock, CBlock, SABlock, SABlock), BatchNorm, mean pool, Linear head.

    Works at any H, W divisible by 32.
    """

    def __init__(self, depth=(3, 4, 8, 3), in_chans=3, num_classes=1000, embed_dim=(64, 128, 320, 512),
                 head_dim=64, mlp_ratio=4.0, qkv_bias=True, conv_stem=False, layer_scale=False):
        super().__init__()
        self.num_classes = num_classes
        self.patch_embed1, self.patch_embed2, self.patch_embed3, self.patch_embed4 = _stem(
            conv_stem, embed_dim, in_chans)
        heads = [d // head_dim for d in embed_dim]
        self.blocks1 = nn.ModuleList([CBlock(embed_dim[0], mlp_ratio) for _ in range(depth[0])])
        self.blocks2 = nn.ModuleList([CBlock(embed_dim[1], mlp_ratio) for _ in range(depth[1])])
        self.blocks3 = nn.ModuleList([SABlock(embed_dim[2], heads[2], mlp_ratio, qkv_bias, layer_scale)
                                      for _ in range(depth[2])])
        self.blocks4 = nn.ModuleList([SABlock(embed_dim[3], heads[3], mlp_ratio, qkv_bias, layer_scale)
                                      for _ in range(depth[3])])
        self.norm = nn.BatchNorm2d(embed_dim[-1])
        self.pre_logits = nn.Identity()
        self.head = nn.Linear(embed_dim[-1], num_classes)

    def forward_features(self, x):
        for embed, blocks in ((self.patch_embed1, self.blocks1), (self.patch_embed2, self.blocks2),
                              (self.patch_embed3, self.blocks3), (self.patch_embed4, self.blocks4)):
            x = embed(x)
            for blk in blocks:
                x = blk(x)
        return self.pre_logits(self.norm(x))

    def forward(self, x):
        x = self.forward_features(x)
        return self.head(x.flatten(2).mean(-1))


class UniFormerDet(nn.Module):
    """Detection backbone: stage 3 global, windowed (`windows`) or hybrid (every 4th block global);
    LayerNorm after each stage; returns the four maps (strides 4, 8, 16, 32). Any H, W.
    """

    def __init__(self, layers=(3, 4, 8, 3), in_chans=3, embed_dim=(64, 128, 320, 512), head_dim=64,
                 mlp_ratio=4.0, qkv_bias=True, windows=False, hybrid=False, window_size=14):
        super().__init__()
        self.patch_embed1, self.patch_embed2, self.patch_embed3, self.patch_embed4 = _stem(
            False, embed_dim, in_chans)
        heads = [d // head_dim for d in embed_dim]
        self.blocks1 = nn.ModuleList([CBlock(embed_dim[0], mlp_ratio) for _ in range(layers[0])])
        self.norm1 = LayerNorm6(embed_dim[0])
        self.blocks2 = nn.ModuleList([CBlock(embed_dim[1], mlp_ratio) for _ in range(layers[1])])
        self.norm2 = LayerNorm6(embed_dim[1])

        def stage3_block(i):
            use_window = windows or (hybrid and (i + 1) % 4 != 0)
            if use_window:
                return SABlockWindows(embed_dim[2], heads[2], window_size, mlp_ratio, qkv_bias)
            return SABlock(embed_dim[2], heads[2], mlp_ratio, qkv_bias)

        self.blocks3 = nn.ModuleList([stage3_block(i) for i in range(layers[2])])
        self.norm3 = LayerNorm6(embed_dim[2])
        self.blocks4 = nn.ModuleList([SABlock(embed_dim[3], heads[3], mlp_ratio, qkv_bias)
                                      for _ in range(layers[3])])
        self.norm4 = LayerNorm6(embed_dim[3])

    def forward(self, x):
        outs = []
        stages = ((self.patch_embed1, self.blocks1, self.norm1), (self.patch_embed2, self.blocks2, self.norm2),
                  (self.patch_embed3, self.blocks3, self.norm3), (self.patch_embed4, self.blocks4, self.norm4))
        for embed, blocks, norm in stages:
            x = embed(x)
            for blk in blocks:
                x = blk(x)
            outs.append(norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2).contiguous())
        return tuple(outs)


_CLASSIFIERS = {
    "uniformer_small": dict(depth=(3, 4, 8, 3), head_dim=64),
    "uniformer_small_plus": dict(depth=(3, 5, 9, 3), head_dim=32, conv_stem=True),
    "uniformer_small_plus_dim64": dict(depth=(3, 5, 9, 3), head_dim=64, conv_stem=True),
    "uniformer_base": dict(depth=(5, 8, 20, 7), head_dim=64),
    "uniformer_base_ls": dict(depth=(5, 8, 20, 7), head_dim=64, layer_scale=True),
}
_DETECTORS = {
    "uniformer_small_det_global": dict(),
    "uniformer_small_det_window": dict(windows=True),
    "uniformer_small_det_hybrid": dict(hybrid=True),
}
MODEL_NAMES = list(_CLASSIFIERS) + list(LIGHT_MODELS) + list(_DETECTORS)


def is_detector(name):
    return name in _DETECTORS


def create_model(name, **kwargs):
    """Builds a model by name; keyword arguments override the variant's defaults."""
    if name in _CLASSIFIERS:
        return UniFormer(**{**_CLASSIFIERS[name], **kwargs})
    if name in LIGHT_MODELS:
        return UniFormerLight(**{**LIGHT_MODELS[name], **kwargs})
    if name in _DETECTORS:
        return UniFormerDet(**{**_DETECTORS[name], **kwargs})
    raise ValueError(f"unknown model '{name}'; known: {', '.join(MODEL_NAMES)}")


def load_checkpoint(model, path_or_dict):
    """Loads weights with strict=True, unwrapping the nesting official checkpoints use."""
    sd = path_or_dict
    if not isinstance(sd, dict):
        sd = torch.load(path_or_dict, map_location="cpu", weights_only=True)
    for key in ("model", "state_dict", "model_ema"):
        if isinstance(sd, dict) and key in sd and isinstance(sd[key], dict):
            sd = sd[key]
            break
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
    if isinstance(model, UniFormerDet):
        sd = {k[len("backbone."):] if k.startswith("backbone.") else k: v for k, v in sd.items()}
    model.load_state_dict(sd, strict=True)
    return model


@torch.no_grad()
def randomize_(model, seed=0):
    """Seeded random weights with non-trivial normalisation statistics, so BatchNorm and
    LayerNorm are not identities and numerical checks exercise every parameter."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm2d,)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) * 0.5 + 0.75)
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, nn.LayerNorm):
            m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.75)
            m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            fan_in = m.weight[0].numel()
            m.weight.copy_(torch.randn(m.weight.shape, generator=g) / fan_in ** 0.5)
            if m.bias is not None:
                m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.02)
    # Residual branches end in conv2 / fc2 / proj: damp them as training does, so activations stay in
    # a trained network's range (undamped, the BN-stem variants reach 1e4 and overflow float16).
    for name, mod in model.named_modules():
        if name.endswith((".conv2", ".mlp.fc2", ".attn.proj")):
            mod.weight.mul_(0.1)
    for name, p in model.named_parameters():
        if name.endswith("gamma_1") or name.endswith("gamma_2"):
            p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.5)
    return model
