"""The dashboard in headless Chromium against a real ``nnserve serve``: pages load without console errors
(a CSP violation is one), curves have one point per epoch, and admin actions work only with the right token.

Screenshots of every page go to ``tmp/artifacts/ui/``; with ``NNSERVE_UPDATE_SCREENSHOT=1`` the model page
is also written to ``docs/dashboard.png``, the picture of the README and of docs/dashboard.md.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from helpers import REPO, free_port, service_env, start_cli, wait_for
from ui_support import TOKEN

from service.store import FileKeyStore

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM, DRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = REPO / "tmp" / "artifacts" / "ui"
pytestmark = [  # slow: a real server and a browser
    pytest.mark.slow,
    pytest.mark.skipif(
        not (os.path.exists(CHROMIUM) and os.path.exists(DRIVER)),
        reason="needs headless Chromium and its driver: apt-get install chromium chromium-driver (Debian)",
    ),
]


@pytest.fixture(scope="module")
def server(ui_store_base, tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("ui-browser") / "store"
    shutil.copytree(ui_store_base, root)
    port = free_port()
    env = service_env(NNSERVE_ADMIN_TOKEN=TOKEN)
    log = root.parent / "serve.log"
    proc = start_cli(
        "serve",
        "--workers",
        1,
        "--port",
        port,
        "--host",
        "127.0.0.1",
        "--store",
        root,
        "--no-retrain-worker",
        env=env,
        log=log,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return requests.get(f"{url}/readyz", timeout=1).status_code == 200
        except requests.RequestException:  # not listening yet, or still loading its models
            return False

    try:
        wait_for(ready, 60, f"nnserve serve on {url}")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(DRIVER), options=options)
    driver.set_page_load_timeout(30)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def errors_in_console(driver) -> list[dict]:
    return [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


def message(driver) -> str:
    box = WebDriverWait(driver, 10).until(expected_conditions.visibility_of_element_located((By.ID, "admin-message")))
    return box.text


def open_locked(driver, url: str) -> None:
    """``url`` in a tab that holds no key for its origin: sessionStorage is per origin, so it is cleared on a page
    of that origin (a key left by an earlier test would make locked.js load the page by itself, racing the form)."""
    driver.get(url)
    driver.execute_script("sessionStorage.clear()")
    driver.get(url)
    assert driver.find_element(By.TAG_NAME, "h1").text == "A key is needed"


def set_token(driver, token: str) -> None:
    field = driver.find_element(By.ID, "admin-token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#admin-form button[type=submit]").click()


@pytest.mark.parametrize(
    ("path", "shot"),
    [
        ("/ui/", "index"),
        ("/ui/models/iris", "model-iris"),
        ("/ui/models/diabetes", "model-diabetes"),
        ("/ui/models/labels", "model-labels"),
        ("/ui/jobs", "jobs"),
    ],
)
def test_each_page_loads_without_console_errors(browser, server, path, shot):
    browser.get(server + path)
    assert browser.find_element(By.TAG_NAME, "h1").text
    assert errors_in_console(browser) == []
    browser.save_screenshot(str(ARTIFACTS / f"{shot}.png"))
    if shot == "model-iris":
        browser.set_window_size(390, 844)  # a phone
        browser.save_screenshot(str(ARTIFACTS / f"{shot}-phone.png"))
        browser.set_window_size(1280, 900)
    if shot == "model-diabetes" and os.environ.get("NNSERVE_UPDATE_SCREENSHOT") == "1":
        browser.set_window_size(1280, 1700)
        browser.save_screenshot(str(REPO / "docs" / "dashboard.png"))
        browser.set_window_size(1280, 900)


def test_loss_curve_has_one_point_per_epoch(browser, server, ui_store_base):
    browser.get(server + "/ui/models/iris")
    epochs = len(
        json.loads((Path(ui_store_base) / "iris" / "1" / "manifest.json").read_text())["epoch_history"]["loss"]
    )
    line = browser.find_element(By.CSS_SELECTOR, '#v1 polyline[data-series="loss"]')
    assert len(line.get_attribute("points").split()) == epochs == 12
    assert browser.find_element(By.CSS_SELECTOR, "#v1 svg.matrix title").get_attribute("textContent").startswith("iris")


def test_wrong_token_shows_the_servers_error_and_changes_nothing(browser, server):
    browser.get(server + "/ui/models/iris")
    set_token(browser, "not-the-token")
    browser.find_element(By.CSS_SELECTOR, 'button.activate[data-version="2"]').click()
    assert message(browser) == "Error 401: missing or invalid bearer token"
    logged = errors_in_console(browser)  # the refused call itself is the one error the browser reports
    assert [e["message"].split(" - ")[0] for e in logged] == [f"{server}/v1/models/iris/versions/2/activate"]
    assert requests.get(f"{server}/v1/models/iris", timeout=5).json()["active_version"] == 1
    assert "not-the-token" not in browser.current_url
    assert browser.get_cookies() == []
    browser.save_screenshot(str(ARTIFACTS / "wrong-token.png"))


def test_activating_a_version_from_the_page_changes_what_v1_reports(browser, server):
    browser.get(server + "/ui/models/iris")
    set_token(browser, TOKEN)
    assert browser.execute_script("return sessionStorage.getItem('nnserve-admin-token')") == TOKEN
    browser.find_element(By.CSS_SELECTOR, 'button.activate[data-version="2"]').click()
    assert message(browser) == "Version 2 of iris is active."
    wait_for(
        lambda: requests.get(f"{server}/v1/models/iris", timeout=5).json()["active_version"] == 2, 10, "iris v2 active"
    )
    listed = {m["name"]: m["version"] for m in requests.get(f"{server}/v1/models", timeout=5).json()["models"]}
    assert listed["iris"] == 2
    assert TOKEN not in browser.current_url and browser.get_cookies() == []
    assert errors_in_console(browser) == []


@pytest.fixture(scope="module")
def closed_server(ui_store_base, tmp_path_factory) -> Iterator[tuple[str, str]]:
    """``nnserve serve`` with NNSERVE_AUTH=closed, and a key with the predict scope: (url, key)."""
    root = tmp_path_factory.mktemp("ui-closed") / "store"
    shutil.copytree(ui_store_base, root)
    _, key = FileKeyStore(root).create("viewer", ["predict"])
    port = free_port()
    env = service_env(NNSERVE_AUTH="closed")
    proc = start_cli(
        "serve", "--workers", 1, "--port", port, "--store", root, "--no-retrain-worker", env=env,
        log=root.parent / "serve.log",
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/readyz"), 60, f"nnserve serve on {url}")
        yield url, key
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def test_closed_pages_load_with_the_key_from_the_form_and_never_put_it_in_a_url(browser, closed_server):
    url, key = closed_server
    open_locked(browser, url + "/ui/")
    assert not browser.find_elements(By.CSS_SELECTOR, 'a[href="/ui/models/iris"]')  # no data without a key
    set_token(browser, key)
    link = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, 'a[href="/ui/models/iris"]'))
    )
    link.click()  # a navigation: the locked page, which loads the model page with the key again
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, '#v1 polyline[data-series="loss"]'))
    )
    assert key not in browser.current_url and browser.get_cookies() == []
    refused = [e for e in errors_in_console(browser) if "401" not in e["message"]]
    assert refused == [], refused  # the navigations' 401s are the only errors
    browser.save_screenshot(str(ARTIFACTS / "closed-model-iris.png"))
    assert requests.get(url + "/ui/", headers={"Accept": "text/html"}, timeout=5).status_code == 401


def test_explain_a_row_from_the_model_page(browser, server):
    browser.get(server + "/ui/models/iris")
    chart = browser.find_element(By.CSS_SELECTOR, "#v1 svg.bars")
    assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) == 4
    if os.environ.get("NNSERVE_UPDATE_SCREENSHOT") == "1":
        figure = browser.find_element(
            By.XPATH, "//section[@id='v1']//h3[text()='Feature importance']/following::figure"
        )
        figure.screenshot(str(REPO / "docs" / "explanations-importance.png"))
    field = browser.find_element(By.ID, "explain-row")
    field.clear()
    field.send_keys("6.7, 3.0, 5.2, 2.3")
    browser.find_element(By.CSS_SELECTOR, "form.explain button[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.attributions"))
    )
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Explanation of iris version")
    features = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "table.attributions tbody th")]
    assert sorted(features) == ["petal_length", "petal_width", "sepal_length", "sepal_width"]
    assert "the probability of" in browser.find_element(By.CSS_SELECTOR, "p.explained").text
    assert errors_in_console(browser) == []
    browser.save_screenshot(str(ARTIFACTS / "explanation-iris.png"))


def test_closed_explain_a_row_sends_the_key_from_the_form(browser, closed_server):
    url, key = closed_server
    open_locked(browser, url + "/ui/")
    set_token(browser, key)
    link = WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, 'a[href="/ui/models/iris"]'))
    )
    link.click()
    field = WebDriverWait(browser, 10).until(expected_conditions.presence_of_element_located((By.ID, "explain-row")))
    field.clear()
    field.send_keys("5.1, 3.5, 1.4, 0.2")
    browser.find_element(By.CSS_SELECTOR, "form.explain button[type=submit]").click()
    WebDriverWait(browser, 10).until(
        expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "table.attributions"))
    )
    assert len(browser.find_elements(By.CSS_SELECTOR, "table.attributions tbody tr")) == 4
    assert key not in browser.current_url and browser.get_cookies() == []
    refused = [e for e in errors_in_console(browser) if "401" not in e["message"]]
    assert refused == [], refused
