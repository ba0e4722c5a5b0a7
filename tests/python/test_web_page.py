"""The web page of `unirt serve` in headless Chromium (Playwright driving Debian's chromium): pick a
model, upload an image, run, see the top-5 and the random-weights note. Writes a screenshot
(UNIRT_SCREENSHOT=path, e.g. docs/results/web_page.png, else into the test's folder)."""
import os
import shutil

import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (requirements.txt)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

from test_serve import Server  # noqa: E402

import unirt  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.skipif(CHROMIUM is None, reason="no chromium here (apt-get install chromium)")
def test_web_page_classifies_an_upload(unirt_bin, tmp_path):
    from unirt_models.export import export_model
    onnx_path = str(tmp_path / "s.onnx")
    export_model("uniformer_small", onnx_path, verify_onnx=False, quiet=True)
    unirt.build(onnx_path, backend="cpu").save(tmp_path / "s.engine")
    image = os.path.join(REPO, "assets", "sample.jpg")
    s = Server(unirt_bin, ["--model", f"uniformer_small={tmp_path / 's.engine'}"])
    shot = os.environ.get("UNIRT_SCREENSHOT") or str(tmp_path / "web_page.png")
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 900, "height": 760})
            page.goto(f"http://{s.url}/")
            page.wait_for_selector("#model option", state="attached")
            assert "uniformer_small (classify)" in page.inner_text("#model")
            page.set_input_files("#file", image)
            page.click("#go")
            page.wait_for_function("document.querySelectorAll('#result tr').length >= 6 || document.getElementById('note').textContent.startsWith('the')",
                                   timeout=60000)  # header + 5 classes (or an error in #note)
            rows = page.locator("#result tr").all_inner_texts()
            note = page.inner_text("#note")
            page.screenshot(path=shot, full_page=True)
            browser.close()
    finally:
        rc, out = s.stop()
    assert rc == 0, out
    assert len(rows) == 6 and "%" in rows[1], rows
    assert "not predictions" in note
    ref = unirt.classify(unirt.load(tmp_path / "s.engine"), image)
    assert rows[1].split("\t")[1].strip() == str(ref.classes[0].index), (rows[1], ref.classes[0])
    assert os.path.getsize(shot) > 10000
