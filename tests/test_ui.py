"""``vqclip ui`` in a real browser: Debian's headless Chromium, driven by Playwright.

The server is ``python -m vqclip ui`` in its own process, as a user starts it. Without
Chromium the browser tests are skipped, unless VQCLIP_REQUIRE_BROWSER=1 (CI sets it) makes
that a failure. VQCLIP_SCREENSHOT=PATH also saves the app's screenshot there (the README's).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.test_cli import assert_one_line_error, run

pytest.importorskip("gradio")
CHROMIUM = os.environ.get("VQCLIP_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update",
        "--disable-sync"]  # fmt: skip
WAIT = 120_000  # ms


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui")
    port = _free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vqclip", "ui", "--port", str(port), "--out-dir", str(folder)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"vqclip ui exited: {proc.stdout.read() if proc.stdout else ''}")
            time.sleep(0.5)
    yield url, folder
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("VQCLIP_REQUIRE_BROWSER"):
            pytest.fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def _page(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(url, wait_until="domcontentloaded")
    page.locator("#prompt textarea").wait_for(timeout=WAIT)
    return page


def _start(page, prompt, iterations):
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#s-iterations input").fill(str(iterations))
    page.locator("#generate").click()


def _status_has(page, text, timeout=WAIT):
    page.wait_for_function(
        "t => document.querySelector('#status').innerText.includes(t)", arg=text,
        timeout=timeout,
    )  # fmt: skip


def _preview_src(page):
    return page.locator("#preview img").get_attribute("src")


def test_generate_shows_previews_then_the_result(server, browser, tmp_path):
    url, folder = server
    page = _page(browser, url)
    _start(page, "a red circle", 40)
    _status_has(page, "Iteration")
    first = _preview_src(page)
    _status_has(page, "Done")
    assert first and _preview_src(page) != first  # the picture changed during the run
    assert '"a red circle"' in page.locator("#used").inner_text()
    assert ".png" in page.locator("#files").inner_text()
    made = sorted(folder.glob("*.png"))
    assert made and Image.open(made[-1]).size == (64, 64)
    shot = tmp_path / "ui.png"
    page.screenshot(path=str(shot))
    if os.environ.get("VQCLIP_SCREENSHOT"):
        shutil.copy(shot, os.environ["VQCLIP_SCREENSHOT"])
    page.close()


def test_cancel_keeps_the_current_image(server, browser):
    url, folder = server
    page = _page(browser, url)
    before = set(folder.glob("*.png"))
    _start(page, "a blue square", 2000)
    _status_has(page, "Iteration")
    page.locator("#cancel").click()
    _status_has(page, "Cancelled", timeout=60_000)
    text = page.locator("#status").inner_text()
    done = int(text.split("Cancelled: ")[1].split(" ")[0])
    assert 0 < done < 2000
    assert len(set(folder.glob("*.png")) - before) == 1  # the image so far was kept
    page.close()


def test_malformed_prompt_shows_its_error_and_the_server_goes_on(server, browser):
    url, _ = server
    page = _page(browser, url)
    _start(page, "a red circle:x:y:z", 5)
    error = page.get_by_text("bad weight 'y'")
    error.first.wait_for(timeout=WAIT)
    page.locator("#s-iterations input").fill("5")
    page.locator("#s-cutn input").fill("0")
    page.locator("#prompt textarea").fill("a red circle")
    page.locator("#generate").click()
    page.get_by_text("--cutn").first.wait_for(timeout=WAIT)  # the CLI's wording
    page.locator("#s-cutn input").fill("8")
    _start(page, "a red circle", 5)
    _status_has(page, "Done")
    page.close()


def test_two_sessions_queue_and_both_finish(server, browser):
    url, _ = server
    a, b = _page(browser, url), _page(browser, url)
    _start(a, "a green triangle", 60)
    _status_has(a, "Iteration")
    _start(b, "a yellow star", 10)
    b.get_by_text("queue", exact=False).first.wait_for(timeout=WAIT)  # its place is shown
    _status_has(a, "Done")
    _status_has(b, "Done")
    a.close()
    b.close()


def test_gallery_reproduces_identical_bytes_and_loads_settings(server, browser):
    url, folder = server
    page = _page(browser, url)
    page.locator("#video input").check()  # an MP4 of the run among the downloads
    _start(page, "a purple circle", 12)
    _status_has(page, "Done")
    assert ".mp4" in page.locator("#files").inner_text()
    page.locator("#video input").uncheck()
    name = page.locator("#status").inner_text().split("saved ")[1].strip()
    page.get_by_role("tab", name="Gallery").click()
    page.locator("#gallery button.thumbnail-item").first.wait_for(timeout=WAIT)
    page.locator("#gallery button.thumbnail-item").first.click()  # newest first: the one just made
    page.wait_for_function(
        "n => document.querySelector('#picked textarea').value.endsWith(n)", arg=name,
        timeout=WAIT,
    )  # fmt: skip
    page.locator("#reproduce").click()
    page.wait_for_function(
        "() => document.querySelector('#reproduced textarea').value.endsWith('.png')",
        timeout=WAIT,
    )  # fmt: skip
    again = Path(page.locator("#reproduced textarea").input_value())
    assert again != folder / name
    assert again.read_bytes() == (folder / name).read_bytes()
    page.locator("#load").click()
    page.get_by_role("tab", name="Generate").click()
    page.wait_for_function(
        "() => document.querySelector('#prompt textarea').value === 'a purple circle'",
        timeout=WAIT,
    )  # fmt: skip
    assert page.locator("#s-iterations input").input_value() == "12"
    page.close()


def test_gallery_png_without_settings_says_so(server, browser):
    url, folder = server
    Image.new("RGB", (8, 8)).save(folder / "zz_plain.png")
    page = _page(browser, url)
    page.get_by_role("tab", name="Gallery").click()
    page.locator("#refresh").click()
    page.get_by_text("(no vqclip settings)").first.wait_for(timeout=WAIT)
    page.locator("#gallery button.thumbnail-item").first.click()  # the newest: the plain PNG
    page.locator("#reproduce").click()
    page.get_by_text("holds no vqclip settings").first.wait_for(timeout=WAIT)
    page.close()


def test_port_in_use_and_bad_folder_are_one_line(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        code, _, err = run(capsys, "ui", "--port", str(port), "--out-dir", str(tmp_path))
    assert_one_line_error(code, err, f"port {port}", "in use", "--port")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = run(capsys, "ui", "--port", str(_free_port()), "--out-dir",
                       str(blocker / "sub"))  # fmt: skip
    assert_one_line_error(code, err, "cannot create folder")


def test_form_reads_an_optional_number_blank_or_none_as_off():
    from vqclip.errors import VqclipError
    from vqclip.ui import settings_from_form

    assert settings_from_form("a red circle", ["prune"], [""]).prune is None
    assert settings_from_form("a red circle", ["prune"], ["None"]).prune is None
    assert settings_from_form("a red circle", ["prune"], ["0.05"]).prune == 0.05
    with pytest.raises(VqclipError, match="prune") as e:
        settings_from_form("a red circle", ["prune"], ["lots"])
    assert "\n" not in str(e.value)
