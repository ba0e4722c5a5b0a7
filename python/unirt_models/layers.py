"""Building blocks shared by the UniFormer classifiers and the detection backbone.

Module and parameter names follow the official Sense-X/UniFormer code so that official
checkpoints load with strict=True. Shapes are read from tensors at run time (never baked in as
Python ints) so that ONNX export keeps batch, height and width dynamic.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

LayerNorm6 = partial(nn.LayerNorm, eps=1e-6)


class Mlp(nn.Module):
    """Token MLP of the SABlocks: Linear -> GELU -> Linear."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CMlp(nn.Module):
    """Convolutional MLP of the CBlocks: 1x1 conv -> GELU -> 1x1 conv."""

    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Conv2d(in_features, hidden_features, 1)
        self.act = nn.GELU()
        self.fc2 = nn.Conv2d(hidden_features, in_features, 1)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class CBlock(nn.Module):
    """Local MHRA block (stages 1-2): depthwise position conv, BN, 1x1 -> dw5x5 -> 1x1, conv MLP."""

    def __init__(self, dim, mlp_ratio=4.0):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = nn.BatchNorm2d(dim)
        self.conv1 = nn.Conv2d(dim, dim, 1)
        self.conv2 = nn.Conv2d(dim, dim, 1)
        self.attn = nn.Conv2d(dim, dim, 5, padding=2, groups=dim)
        self.norm2 = nn.BatchNorm2d(dim)
        self.mlp = CMlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        x = x + self.pos_embed(x)
        x = x + self.conv2(self.attn(self.conv1(self.norm1(x))))
        return x + self.mlp(self.norm2(x))


class Attention(nn.Module):
    """Multi-head self-attention over tokens (B, N, C) with a packed qkv projection."""

    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q @ k.transpose(-2, -1)) * self.scale
        attn = attn.softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(x)


class SABlock(nn.Module):
    """Global MHRA block (stages 3-4); `layer_scale` adds the gamma_1/gamma_2 of uniformer_base_ls."""

    def __init__(self, dim, num_heads, mlp_ratio=4.0, qkv_bias=True, layer_scale=False, init_value=1e-6):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm6(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = LayerNorm6(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.ls = layer_scale
        if layer_scale:
            self.gamma_1 = nn.Parameter(init_value * torch.ones(dim))
            self.gamma_2 = nn.Parameter(init_value * torch.ones(dim))

    def forward(self, x):
        x = x + self.pos_embed(x)
        b, c, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)
        if self.ls:
            x = x + self.gamma_1 * self.attn(self.norm1(x))
            x = x + self.gamma_2 * self.mlp(self.norm2(x))
        else:
            x = x + self.attn(self.norm1(x))
            x = x + self.mlp(self.norm2(x))
        return x.transpose(1, 2).reshape(b, c, h, w)


class SABlockWindows(nn.Module):
    """SABlock whose attention runs inside non-overlapping windows (detection stage 3).

    H and W are padded right/bottom up to a multiple of the window, attended per window, put back
    and cropped. The pad amounts are computed from the tensor's shape so they stay symbolic in ONNX.
    """

    def __init__(self, dim, num_heads, window_size=14, mlp_ratio=4.0, qkv_bias=True):
        super().__init__()
        self.window_size = window_size
        self.pos_embed = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)
        self.norm1 = LayerNorm6(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.norm2 = LayerNorm6(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        ws = self.window_size
        x = x + self.pos_embed(x)
        x = x.permute(0, 2, 3, 1)
        b, h, w, c = x.shape
        shortcut = x
        x = self.norm1(x)
        pad_r = (ws - w % ws) % ws
        pad_b = (ws - h % ws) % ws
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        hp, wp = h + pad_b, w + pad_r
        windows = x.reshape(b, hp // ws, ws, wp // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)
        windows = self.attn(windows)
        x = windows.reshape(b, hp // ws, wp // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, hp, wp, c)
        x = x[:, :h, :w, :]
        x = shortcut + x
        x = x + self.mlp(self.norm2(x))
        return x.permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Non-overlapping patch conv followed by LayerNorm over channels (no fixed-size assert)."""

    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x):
        x = self.proj(x)
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class HeadEmbedding(nn.Module):
    """Conv stem of the small_plus models: two 3x3 stride-2 convs with BN and GELU."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels // 2, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels // 2),
            nn.GELU(),
            nn.Conv2d(out_channels // 2, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        return self.proj(x)


class MiddleEmbedding(nn.Module):
    """Downsampling between stages of the conv-stem models: 3x3 stride-2 conv + BN."""

    def __init__(self, in_channels, out_channels):
        super().__init__()
        self.proj = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
            nn.BatchNorm2d(out_channels),
        )

    def forward(self, x):
        return self.proj(x)
