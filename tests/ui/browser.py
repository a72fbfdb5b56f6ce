"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, as a person's browser.

The machine's network is closed: the flags below keep Chromium from calling home (without
them it floods refused connections), and each browser gets a fresh profile, so nothing a
previous test chose (MLflow's GenAI / Model training switch lives in localStorage) leaks in.
MLflow and optuna-dashboard are React apps: tests wait for elements, never for page load.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"  # gitignored; CI prints the folder at the end
FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1600,1000"]


def executables() -> tuple[str, str]:
    """(chromium, chromedriver); skipped where they are not installed, a failure in CI (.ci/run installs them)."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if not (chromium and driver):
        message = "chromium and chromium-driver (Debian packages) are needed for the browser tests"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return chromium, driver


@contextmanager
def chromium() -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = executables()
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="study-chromium-")
    for flag in [*FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_until(what: str, check: Callable[[], object], timeout: float = 60) -> object:
    """Poll `check` until it returns something truthy; fail naming `what` after `timeout` seconds."""
    from selenium.common.exceptions import WebDriverException

    deadline = time.time() + timeout
    last: Exception | None = None
    while time.time() < deadline:
        try:
            found = check()
            if found:
                return found
        except WebDriverException as exc:  # an element not there yet, or re-rendered under us
            last = exc
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}" + (f" ({last})" if last else ""))


def by_text(driver, text: str, tag: str = "*", exact: bool = False):
    """Visible `tag` elements whose text contains (or with `exact`, is) `text`, innermost ones only."""
    from selenium.webdriver.common.by import By

    literal = f'"{text}"' if '"' not in text else f"'{text}'"
    match = f"normalize-space(.)={literal}" if exact else f"contains(., {literal})"
    xpath = f"//{tag}[{match} and not(*[{match}])]"
    return [e for e in driver.find_elements(By.XPATH, xpath) if e.is_displayed()]


def page_text(driver) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.TAG_NAME, "body").text


def screenshot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def wait_for_http(url: str, alive: Callable[[], bool], timeout: float = 120) -> None:
    """Until `url` answers 200 (a server starting); fail at once if its process died."""
    deadline = time.time() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if not alive():
            raise AssertionError(f"the server for {url} exited before answering")
        if time.time() > deadline:
            raise AssertionError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(1)
