"""The service's web page in headless Chromium (Debian's /usr/bin/chromium and its chromedriver): upload an
image, wait for its restoration, check both are shown with a download link, keep a screenshot.

Skipped, saying why, only where Chromium is not installed (`.ci/run` installs it, while pip runs)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from ..conftest import write_images
from ..onnx_models import exported_model
from ..serving import Server

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1200,1500",
)
WAIT = 60  # seconds for the page to restore the image
INSTALL_WAIT = 300  # seconds to wait for `.ci/run`'s Chromium install


def wait_for_ci_install() -> None:
    """`.ci/run` installs Chromium in the background and writes apt's exit status to VAE_RESTORE_CHROMIUM_READY."""
    ready = os.environ.get("VAE_RESTORE_CHROMIUM_READY")
    if not ready:
        return
    deadline = time.monotonic() + INSTALL_WAIT
    while not Path(ready).exists():
        assert time.monotonic() < deadline, f"Chromium's install did not finish in {INSTALL_WAIT} s ({ready}.log)"
        time.sleep(1)
    assert Path(ready).read_text().strip() == "0", f"installing Chromium failed: {ready}.log"


@pytest.fixture
def browser(tmp_path):
    wait_for_ci_install()
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver: apt-get install -y chromium chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "profile", ignore_errors=True)


def test_the_page_restores_an_uploaded_image(browser, tmp_path_factory, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = exported_model(tmp_path_factory)[1]
    image = write_images(tmp_path / "in", 1, size=(240, 320), names=["photo.png"])[0]
    server = Server(model, tmp_path / "server")
    try:
        browser.get(server.url + "/")
        wait = WebDriverWait(browser, WAIT)
        wait.until(lambda b: b.find_element(By.ID, "model").text.startswith("Model "))
        browser.find_element(By.ID, "file").send_keys(str(image))
        wait.until(lambda b: b.find_element(By.ID, "result").is_displayed() or b.find_element(By.ID, "error").text)
        assert browser.find_element(By.ID, "error").text == ""
        assert not browser.find_element(By.ID, "progress").is_displayed(), "the progress bar goes once it is done"
        for name in ("before", "after", "compare-before", "compare-after"):
            script = (
                "const i = document.getElementById(arguments[0]); return [i.complete, i.naturalWidth, i.naturalHeight];"
            )
            size = browser.execute_script(script, name)
            assert size == [True, 320, 240], (name, size)
        download = browser.find_element(By.ID, "download")
        assert download.get_attribute("href").startswith("blob:") and download.get_attribute("download") == (
            "restored-photo.png"
        )
        browser.execute_script(
            "const s = document.getElementById('slider'); s.value = 30; s.dispatchEvent(new Event('input'));"
        )
        assert "30%" in browser.find_element(By.ID, "compare-after").get_attribute("style")
        browser.save_screenshot(str(tmp_path / "page.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
        assert server.written() == []
    finally:
        server.close()
