"""A real headless browser for the web tests: Debian's chromium, driven by its chromedriver.

Nothing is downloaded at run time: selenium is pointed at /usr/bin/chromium and
/usr/bin/chromedriver (``apt-get install chromium chromium-driver``). Selenium's calls block,
and the pages are served from the test's own event loop, so every call goes through a thread
(:class:`Browser`'s async methods).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webelement import WebElement

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver"
WINDOW = (1280, 860)

T = TypeVar("T")


def missing_browser() -> str | None:
    """Why the browser cannot start here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not path.exists() and shutil.which(path.name) is None:
            return f"{path} is missing: the web tests need Debian's chromium ({INSTALL})"
    return None


def start_chromium() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        # As root in a container, chromium needs these to start at all.
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        f"--window-size={WINDOW[0]},{WINDOW[1]}",
        # Tests call play() without a click.
        "--autoplay-policy=no-user-gesture-required",
        "--mute-audio",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


class Browser:
    """One chromium for the whole session; async methods run selenium in a thread."""

    def __init__(self, driver: webdriver.Chrome) -> None:
        self.driver = driver

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.to_thread(fn, *args)

    async def open(self, url: str) -> None:
        await self._call(self.driver.get, url)

    async def script(self, source: str, *args: Any) -> Any:
        """Run JavaScript in the page; ``return`` gives its value back."""
        return await self._call(self.driver.execute_script, source, *args)

    async def find_all(self, css: str) -> list[WebElement]:
        return await self._call(self.driver.find_elements, By.CSS_SELECTOR, css)

    async def text(self, css: str) -> str:
        """The text shown by the first element matching ``css`` (as a user reads it)."""
        element = await self._call(self.driver.find_element, By.CSS_SELECTOR, css)
        return str(await self._call(lambda: element.text))

    async def texts(self, css: str) -> list[str]:
        elements = await self.find_all(css)
        return [str(await self._call(lambda e=e: e.text)) for e in elements]

    async def hover(self, css: str) -> None:
        """Move the pointer over the first element matching ``css``."""

        def move() -> None:
            element = self.driver.find_element(By.CSS_SELECTOR, css)
            ActionChains(self.driver).move_to_element(element).perform()

        await self._call(move)

    async def type_and_submit(self, css: str, text: str) -> None:
        """Type ``text`` into the field matching ``css`` and press Enter."""

        def type_in() -> None:
            field = self.driver.find_element(By.CSS_SELECTOR, css)
            field.clear()
            field.send_keys(text + Keys.ENTER)

        await self._call(type_in)

    async def title(self) -> str:
        return str(await self._call(lambda: self.driver.title))

    async def screenshot(self, path: Path) -> None:
        await self._call(self.driver.save_screenshot, str(path))

    async def wait_until(self, source: str, *, within_s: float = 30.0) -> Any:
        """Poll the JavaScript expression ``source`` until it is truthy; its value."""
        async with asyncio.timeout(within_s):
            while True:
                value = await self.script(f"return ({source});")
                if value:
                    return value
                await asyncio.sleep(0.1)
