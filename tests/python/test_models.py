"""PyTorch definitions: every variant runs at several sizes, parameter counts and official names."""
import pytest
import torch

from unirt_models import MODEL_NAMES, create_model, is_detector, load_checkpoint, randomize_

EXPECTED_PARAMS_M = {"uniformer_small": 21.5, "uniformer_small_plus": 24.0, "uniformer_small_plus_dim64": 24.0,
                     "uniformer_base": 49.8, "uniformer_base_ls": 49.8, "uniformer_xxs": 10.2, "uniformer_xs": 16.5}

# Keys as they appear in the official Sense-X/UniFormer checkpoints.
OFFICIAL_KEYS = {
    "uniformer_small": ["patch_embed1.proj.weight", "patch_embed1.norm.weight", "blocks1.0.pos_embed.weight",
                        "blocks1.0.norm1.running_var", "blocks1.0.conv1.weight", "blocks1.0.attn.weight",
                        "blocks1.0.conv2.bias", "blocks1.0.mlp.fc1.weight", "blocks3.0.attn.qkv.weight",
                        "blocks3.0.attn.proj.bias", "blocks3.0.norm1.weight", "blocks4.2.mlp.fc2.weight",
                        "norm.running_mean", "head.weight"],
    "uniformer_small_plus": ["patch_embed1.proj.0.weight", "patch_embed1.proj.1.running_mean", "patch_embed1.proj.3.weight",
                             "patch_embed1.proj.4.bias", "patch_embed2.proj.0.weight", "patch_embed2.proj.1.weight"],
    "uniformer_base_ls": ["blocks3.0.gamma_1", "blocks4.6.gamma_2"],
    "uniformer_xxs": ["cls_token", "cls_upsample.weight", "norm_cls.weight", "head_cls.bias", "patch_embed1.proj.4.bias",
                      "patch_embed2.proj.weight", "blocks3.7.attn.qkv.weight", "blocks4.1.mlp.fc2.bias"],
    "uniformer_xs": ["cls_token", "blocks3.8.norm2.weight", "blocks4.2.pos_embed.weight", "head.weight"],
    "uniformer_small_det_hybrid": ["norm1.weight", "norm4.bias", "blocks3.0.attn.qkv.weight", "patch_embed4.norm.weight"],
}


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_variant_runs_at_two_sizes(name):
    m = randomize_(create_model(name).eval())
    sizes = [(1, 3, 100, 116), (2, 3, 72, 88)] if is_detector(name) else [(1, 3, 64, 64), (2, 3, 96, 128)]
    for s in sizes:
        with torch.no_grad():
            y = m(torch.randn(*s))
        if is_detector(name):
            assert [t.shape[1] for t in y] == [64, 128, 320, 512]
            assert y[0].shape[2:] == (s[2] // 4, s[3] // 4)
        else:
            assert y.shape == (s[0], 1000)


@pytest.mark.parametrize("name", list(EXPECTED_PARAMS_M))
def test_parameter_count(name):
    n = sum(p.numel() for p in create_model(name).parameters()) / 1e6
    assert abs(n - EXPECTED_PARAMS_M[name]) < 0.5, n


@pytest.mark.parametrize("name", list(OFFICIAL_KEYS))
def test_official_key_names(name):
    keys = set(create_model(name).state_dict())
    missing = [k for k in OFFICIAL_KEYS[name] if k not in keys]
    assert not missing, missing


def test_checkpoint_nested_under_model_loads_strictly(tmp_path):
    src = randomize_(create_model("uniformer_small").eval(), seed=3)
    path = tmp_path / "ckpt.pth"
    torch.save({"model": src.state_dict(), "epoch": 300}, path)
    dst = load_checkpoint(create_model("uniformer_small").eval(), str(path))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))
    bad = {"model": {k: v for k, v in src.state_dict().items() if k != "head.weight"}}
    with pytest.raises(RuntimeError):
        load_checkpoint(create_model("uniformer_small"), bad)


@pytest.mark.parametrize("name", ["uniformer_xxs", "uniformer_xs"])
def test_light_models_match_the_official_code(name):
    """With UNIRT_OFFICIAL pointing at a Sense-X/UniFormer checkout: the official module loads our
    state dict with strict=True and gives the same eval outputs (1e-5 of scale) at three sizes."""
    import importlib.util
    import os
    import sys
    root = os.environ.get("UNIRT_OFFICIAL")
    src = os.path.join(root or "", "image_classification", "models", "uniformer_light.py")
    if not root or not os.path.exists(src):
        pytest.skip("set UNIRT_OFFICIAL to a Sense-X/UniFormer checkout to compare with the official uniformer_light.py")
    pytest.importorskip("timm")
    spec = importlib.util.spec_from_file_location("official_uniformer_light", src)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    ours = randomize_(create_model(name).eval())
    official = getattr(mod, name)().eval()
    official.load_state_dict(ours.state_dict(), strict=True)
    for shape in [(2, 3, 224, 224), (1, 3, 160, 192), (3, 3, 256, 320)]:
        x = torch.randn(*shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            mod.global_attn = 0
            a, b = official(x), ours(x)
        assert (a - b).abs().max() <= 1e-5 * max(1.0, a.abs().max().item()), shape
