"""The README's op list is the op table: `unirt ops --json` (generated from the op table and the
kernel registries) must name exactly the ops the README's "Supported ONNX ops" section lists, and
every one of them must have a CPU kernel."""
import json
import os
import re
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def readme_ops():
    text = open(os.path.join(REPO, "README.md")).read()
    section = text.split("## Supported ONNX ops", 1)[1].split("\n## ", 1)[0]
    listed = section.split(". The CUDA backend", 1)[0]
    listed = re.sub(r"\([^)]*\)", "", listed)  # "Conv (dense, grouped, ...)"
    return {w.strip() for w in listed.replace("\n", " ").split(",") if w.strip()}


def test_readme_op_list_matches_unirt_ops(unirt_bin):
    p = subprocess.run([unirt_bin, "ops", "--json"], capture_output=True, text=True, check=True)
    ops = json.loads(p.stdout)
    onnx_ops = {o["op"] for o in ops if o["kind"] == "onnx"}
    listed = readme_ops()
    assert listed - onnx_ops == set(), f"README lists ops unirt does not accept: {sorted(listed - onnx_ops)}"
    assert onnx_ops - listed == set(), f"unirt accepts ops the README does not list: {sorted(onnx_ops - listed)}"
    no_cpu = [o["op"] for o in ops if not o["cpu"]]
    assert no_cpu == [], f"ops without a CPU kernel: {no_cpu}"
    fused = {o["op"] for o in ops if o["kind"] == "fused"}
    assert fused == {"unirt.Attention", "unirt.BoxDecode", "unirt.ConvNHWC", "unirt.LayerNormQuantize", "unirt.Linear", "unirt.Mlp",
                     "unirt.MultiLevelRoiAlign", "unirt.MultiLevelTopK", "unirt.QuantizedLinear", "unirt.QuantizedMlp"}, fused
