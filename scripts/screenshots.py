"""Screenshots of the in-car screen on the demo, for the README: docs/screen-live.png and docs/screen-alert.png.

Runs `alprd demo --frames 0` (the synthetic street, the shipped models, the demo hotlist) with the screen on
a free loopback port, logs in as the demo user in Debian's headless Chromium (Playwright), shows the live
view, waits for the first hotlist alert, then stops the demo with Ctrl-C (SIGINT).

    .venv/bin/python scripts/screenshots.py [--out docs]
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from alprd.cli.core import DEMO_PASSWORD, DEMO_USER

CHROMIUM = "/usr/bin/chromium"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        conf = Path(tmp) / "demo.toml"
        conf.write_text(f'[screen]\nport = {free_port()}\ntimezone = "America/Chicago"\n')
        alprd = str(Path(sys.executable).with_name("alprd"))
        demo = subprocess.Popen([alprd, "-c", str(conf), "demo", "--frames", "0", "--state-dir", f"{tmp}/state"],
                                stdout=subprocess.PIPE, text=True)
        try:
            url = next(line.split()[1] for line in demo.stdout if line.startswith("screen: http"))
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(url + "login")
                page.fill("#username", DEMO_USER)
                page.fill("#password", DEMO_PASSWORD)
                page.click("#login-button")
                page.wait_for_selector("#alert:not([hidden])", timeout=60_000)  # the first hit, ~3 s in
                page.wait_for_timeout(300)
                page.screenshot(path=str(args.out / "screen-alert.png"))
                page.click("#alert-close")
                page.locator("#reads .read").nth(5).wait_for(timeout=60_000)
                if page.is_visible("#alert"):  # the next hit came meanwhile
                    page.click("#alert-close")
                page.screenshot(path=str(args.out / "screen-live.png"))
                browser.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(60)
    print(f"wrote {args.out / 'screen-live.png'} and {args.out / 'screen-alert.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
