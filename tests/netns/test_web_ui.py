"""The web UI in a real headless browser, against a private network in namespaces (root).

A private planet with a ztone root, a ztone controller and a ztone member, each a
daemon in its own namespace (198.18.0.0/24, no default route). Chromium (Debian's,
driven by chromedriver through selenium) runs inside the controller's namespace, so
it reaches the controller's API on 127.0.0.1 and nothing else. The test logs in
through the one-time link ``ztone-cli ui`` prints, creates a network, sees
validation messages from the controller's own checks next to the fields, watches the
member that joins from the other daemon appear unauthorized, authorizes it, sees it
get an address and go online (and checks the member's own view), deauthorizes it,
joins and leaves a network from the UI, deletes the network, and checks that a
request without the session cookie, or with a wrong or missing CSRF token, is refused.

Screenshots of each page go to ``$ZTONE_ARTIFACTS/web-ui/`` (default
``ui-screenshots/web-ui/`` at the repository root, git-ignored).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ztone.cli import idtool

from .netns import Lan, bridge_namespaces, netns_unavailable
from .test_private_network import PORT, Member, _identity, _network_of, wait_until

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


def _skip_reason() -> str | None:
    reason = netns_unavailable()
    if reason:
        return reason
    if not Path("/dev/net/tun").exists():
        return "no /dev/net/tun"
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        return "no headless browser (apt-get install chromium chromium-driver)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (pip install selenium; the test extra has it)"
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason())),
]

if _skip_reason() is None:
    from selenium import webdriver
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait


def screenshot_dir() -> Path:
    base = os.environ.get("ZTONE_ARTIFACTS")
    folder = (Path(base) if base else REPO / "ui-screenshots") / "web-ui"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


class Daemon(Member):
    """A ztone daemon of the lab (tests/netns/test_private_network.py's Member)."""

    @property
    def address(self) -> str:
        return (self.home / "identity.public").read_text()[:10]

    def network(self, nwid: str) -> dict[str, Any] | None:
        return _network_of(self, nwid)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Lan, dict[str, Daemon]]]:
    with bridge_namespaces(3, "198.18.0.0/24", None) as lan:
        names = ["root", "ctrl", "member"]
        nodes = {
            n: Daemon(n, lan.hosts[i], tmp_path / n, str(lan.v4[i].ip)) for i, n in enumerate(names)
        }
        root_secret, root_public = _identity(0)
        ctrl_secret, _ = _identity(1)
        planet = tmp_path / "planet"
        spec = f"{root_public}@{nodes['root'].ip}/{PORT}"
        assert idtool.main(["genplanet", "--out", str(planet), "--id", "0x5a5a", spec]) == 0
        for d in nodes.values():
            d.home.mkdir()
            shutil.copy(planet, d.home / "planet")
            settings = {"settings": {"allowSecondaryPort": False}}
            (d.home / "local.conf").write_text(json.dumps(settings))
        (nodes["root"].home / "identity.secret").write_text(root_secret)
        (nodes["ctrl"].home / "identity.secret").write_text(ctrl_secret)
        try:
            for d in nodes.values():
                d.start()
            yield lan, nodes
        finally:
            for d in nodes.values():
                d.stop()


def browser() -> WebDriver:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--window-size=1280,1000",
    ):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))


class Page:
    """The browser, with waits bounded in time and a screenshot helper."""

    def __init__(self, driver: WebDriver, shots: Path) -> None:
        self.driver = driver
        self.shots = shots

    def wait(self, condition: Any, timeout: float = 30) -> Any:
        return WebDriverWait(
            self.driver,
            timeout,
            poll_frequency=0.25,
            ignored_exceptions=(StaleElementReferenceException,),
        ).until(lambda d: condition())

    def find(self, css: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def present(self, css: str) -> bool:
        return bool(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        try:
            elements = self.driver.find_elements(By.CSS_SELECTOR, css)
            return str(elements[0].text) if elements else ""
        except StaleElementReferenceException:  # re-rendered meanwhile
            return ""

    def heading(self) -> str:
        return self.text("main h1")

    def fill(self, css: str, value: str) -> None:
        element = self.find(css)
        element.clear()
        element.send_keys(value)

    def unlabeled(self) -> list[str]:
        """Form controls of the page with no label (a <label for>, or aria-label)."""
        script = (
            "return [...document.querySelectorAll('input, textarea, select')]"
            ".filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))"
            ".map(e => e.id || e.outerHTML)"
        )
        return list(self.driver.execute_script(script))

    def tab_to(self, text: str, limit: int = 15) -> None:
        """Press Tab until the focused element's text is ``text`` (keyboard only)."""
        for _ in range(limit):
            ActionChains(self.driver).send_keys(Keys.TAB).perform()
            if self.driver.switch_to.active_element.text == text:
                return
        raise AssertionError(f"{text!r} not reached with {limit} Tab presses")

    def shot(self, name: str) -> None:
        time.sleep(0.3)  # let the last render settle
        assert self.driver.save_screenshot(str(self.shots / f"{name}.png"))


def raw(method: str, path: str, headers: dict[str, str], body: bytes | None = None) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{PORT}{path}", data=body, method=method, headers=headers
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return int(e.code)


def test_web_ui_end_to_end(lab: tuple[Lan, dict[str, Daemon]]) -> None:
    _, nodes = lab
    ctrl, member = nodes["ctrl"], nodes["member"]
    for d in nodes.values():
        assert wait_until(d.online, 60), (d.name, d.cli("info"))

    rc, out = ctrl.cli("ui")
    assert rc == 0, out
    match = re.search(r"(http://127\.0\.0\.1:\d+/app/#login=[A-Za-z0-9_-]+)", out)
    assert match is not None, out
    link = match.group(1)
    shots = screenshot_dir()

    with ctrl.ns.entered():
        driver = browser()
        try:
            page = Page(driver, shots)
            try:
                _walk_through(page, link, ctrl, member)
            except BaseException:
                driver.save_screenshot(str(shots / "failure.png"))
                raise
        finally:
            driver.quit()


def _walk_through(page: Page, link: str, ctrl: Daemon, member: Daemon) -> None:
    driver = page.driver
    # --- log in with the one-time link; the code leaves the address bar at once
    driver.get(link)
    page.wait(lambda: page.heading() == "Node")
    assert "login=" not in driver.current_url
    page.wait(lambda: page.text("#node-online") == "ONLINE")
    assert ctrl.address in page.text("main dl")
    page.wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "#peers tbody tr")) >= 1)
    assert "direct" in page.text("#peers")
    cookie = driver.get_cookie("ztone_session")
    assert cookie is not None and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie.get("expiry"), cookie  # an expiring cookie (Max-Age)
    page.shot("01-node")

    # the link works once: its code is spent
    status = raw("POST", "/app/session", {"Content-Type": "application/json"},
                 json.dumps({"code": link.rsplit("=", 1)[1]}).encode())  # fmt: skip
    assert status == 403

    # --- requests without the session cookie, or with a wrong CSRF token, are refused
    session = f"ztone_session={cookie['value']}"
    create = json.dumps({"name": "sneaky"}).encode()
    assert raw("GET", "/status", {}) == 401
    assert raw("GET", "/status", {"Cookie": session}) == 200
    assert raw("POST", "/controller/network", {}, create) == 401
    assert raw("POST", "/controller/network", {"Cookie": session}, create) == 403
    wrong = {"Cookie": session, "X-ZTone-CSRF": "not-the-token"}
    assert raw("POST", "/controller/network", wrong, create) == 403
    assert raw("GET", "/controller/network", {"Cookie": session}) == 200

    # --- create a network
    page.find('nav a[data-view="networks"]').click()
    page.wait(lambda: page.heading() == "Controller networks")
    assert page.unlabeled() == []
    page.fill("#new-network-name", "ui-lab")
    page.shot("02-networks-empty")
    page.find("#create-network button[type=submit]").click()
    page.wait(lambda: page.present("#network-id"))
    nwid = page.text("#network-id")
    assert re.fullmatch(r"[0-9a-f]{16}", nwid) and nwid.startswith(ctrl.address)
    assert "sneaky" not in json.dumps(ctrl.cli("/controller/network"))

    # settings: a bad pool shows the controller's own message next to the pools
    page.find("#net-v4").click()
    page.fill("#net-pools", "zz - 198.19.0.250")
    page.fill("#net-routes", "198.19.0.0/24")
    page.find("#network-settings button[type=submit]").click()
    page.wait(lambda: "ipAssignmentPools[0].ipRangeStart" in page.text("#net-pools-error"))
    assert "is not an IP address" in page.text("#net-pools-error")
    assert driver.switch_to.active_element.get_attribute("id") == "net-pools"
    page.shot("03-network-validation")
    page.fill("#net-pools", "198.19.0.10 - 198.19.0.250")
    page.find("#net-v6-rfc4193").click()
    page.fill("#net-dns-domain", "lab.example")
    page.fill("#net-dns-servers", "198.19.0.1")
    page.find("#network-settings button[type=submit]").click()
    page.wait(lambda: page.text("#settings-saved").startswith("Saved at"))
    assert page.text("#net-pools-error") == ""
    stored = json.loads(ctrl.cli(f"/controller/network/{nwid}")[1])
    assert stored["ipAssignmentPools"] == [
        {"ipRangeStart": "198.19.0.10", "ipRangeEnd": "198.19.0.250"}
    ]
    assert stored["v4AssignMode"]["zt"] is True and stored["v6AssignMode"]["rfc4193"] is True
    assert stored["dns"] == {"domain": "lab.example", "servers": ["198.19.0.1"]}

    # rules: the same validation messages as the API's
    rules = page.find("#net-rules")
    saved_rules = rules.get_attribute("value")
    page.fill("#net-rules", '[{"type": "ACTION_BOGUS"}]')
    page.find("#network-rules button[type=submit]").click()
    page.wait(lambda: "rules[0]" in page.text("#net-rules-error"))
    page.shot("04-network-rules-error")
    page.fill("#net-rules", saved_rules or "[]")
    page.find("#network-rules button[type=submit]").click()
    page.wait(lambda: page.text("#net-rules-error") == "")

    # --- a member joins from another daemon: it appears, unauthorized, by itself
    rc, out = member.cli("join", nwid)
    assert rc == 0 and out.strip() == "200 join OK", out
    row = f"#member-{member.address}"
    page.wait(lambda: page.present(row), timeout=60)
    page.wait(lambda: "unauthorized" in page.text(f"{row} td[data-label=Status]"))
    assert wait_until(lambda: (member.network(nwid) or {}).get("status") == "ACCESS_DENIED", 60)
    driver.execute_script("arguments[0].scrollIntoView()", page.find(row))
    page.shot("05-member-unauthorized")

    # authorize it in the UI: it gets an address and goes online
    page.find(f"#m-{member.address}-auth").click()
    page.wait(lambda: page.text(f"{row} td[data-label=Status]") == "authorized, online", 60)
    page.wait(
        lambda: "198.19.0." in (page.find(f"#m-{member.address}-ips").get_attribute("value") or ""),
        60,
    )

    def configured() -> bool:
        net = member.network(nwid) or {}
        return net.get("status") == "OK" and any(
            a.startswith("198.19.0.") for a in net.get("assignedAddresses", [])
        )

    assert wait_until(configured, 60), member.network(nwid)
    page.wait(lambda: page.text(f"{row} td[data-label=Version]") not in ("", "-"))
    page.wait(lambda: page.text(f"{row} td[data-label='Physical address']").startswith(member.ip))
    driver.execute_script("arguments[0].scrollIntoView()", page.find(row))
    page.shot("06-member-authorized")
    assert page.unlabeled() == []
    # the README's picture: the top of the network page, the member online
    driver.set_window_size(1280, 520)
    driver.execute_script("window.scrollTo(0, 0)")
    page.shot("readme-network")
    driver.set_window_size(1280, 1000)

    # deauthorize it: the member loses the network
    page.find(f"#m-{member.address}-auth").click()
    page.wait(lambda: page.text(f"{row} td[data-label=Status]").startswith("unauthorized"))
    assert wait_until(lambda: (member.network(nwid) or {}).get("status") == "ACCESS_DENIED", 60)
    member_record = json.loads(ctrl.cli(f"/controller/network/{nwid}/member/{member.address}")[1])
    assert member_record["authorized"] is False

    # phone width: still readable (tables stack)
    driver.set_window_size(390, 844)
    driver.execute_script("window.scrollTo(0, 0)")
    page.shot("07-network-phone")
    driver.set_window_size(1280, 1000)

    # --- joined networks (reached with the keyboard): join from the UI, then leave
    driver.get(f"http://127.0.0.1:{PORT}/app/#/status")
    page.wait(lambda: page.heading() == "Node")
    page.tab_to("Joined networks")
    ActionChains(driver).send_keys(Keys.ENTER).perform()
    page.wait(lambda: page.heading() == "Joined networks")
    assert page.unlabeled() == []
    page.fill("#join-id", "xyz")
    page.find("#join-network button[type=submit]").click()
    page.wait(lambda: "16 hexadecimal" in page.text("#join-id-error"))
    page.fill("#join-id", nwid)
    page.find("#join-network button[type=submit]").click()
    page.wait(lambda: page.present("#joined"))
    page.wait(lambda: nwid in page.text("#joined"))
    page.shot("08-joined")
    page.find(f'button[aria-label="Leave network {nwid}"]').click()
    page.wait(lambda: _alert(driver) is not None)
    alert = driver.switch_to.alert
    alert.accept()
    page.wait(lambda: not page.present("#joined"))
    assert ctrl.network(nwid) is None

    # --- delete the network, with confirmation
    driver.get(f"http://127.0.0.1:{PORT}/app/#/network/{nwid}")
    page.wait(lambda: page.present("#delete-network"))
    page.find("#delete-network").click()
    page.wait(lambda: _alert(driver) is not None)
    driver.switch_to.alert.dismiss()  # cancelled: nothing happens
    assert page.present("#network-id")
    page.find("#delete-network").click()
    page.wait(lambda: _alert(driver) is not None)
    driver.switch_to.alert.accept()
    page.wait(lambda: page.heading() == "Controller networks")
    assert nwid not in ctrl.cli("/controller/network")[1]
    page.shot("09-networks-after-delete")

    # --- logging out ends the session
    page.find("#logout").click()
    page.wait(lambda: page.heading() == "Log in")
    assert raw("GET", "/status", {"Cookie": session}) == 401


def _alert(driver: WebDriver) -> Any:
    try:
        return driver.switch_to.alert
    except Exception:
        return None
