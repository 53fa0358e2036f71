"""`make screenshots`: a PNG of each page of `cityfed console` (docs/console/*.png), taken by
Debian's Chromium against a small generated region of five city processes, after a question,
a fraud check and a receipt check, so a reader sees the console without running it."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from federation.services.console.server import start_console  # noqa: E402
from federation.services.console.users import Users  # noqa: E402
from federation.synthetic import CITIES, RegionScale  # noqa: E402
from federation.synthetic.local_region import (  # noqa: E402
    AUTHORITY,
    start_local_region,
    write_region,
)
from federation.trust.identity import RegionDirectory  # noqa: E402
from tests.browserkit import CHROMIUM, LAUNCH_ARGS  # noqa: E402

USER, PASSWORD = "duty-officer", "screenshots only, never reused"
QUESTION = ("SELECT district_code, count(*) AS residents FROM population "
            "WHERE deceased_on IS NULL GROUP BY district_code ORDER BY district_code LIMIT 12")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "console")
    args = parser.parse_args()
    chromium = CHROMIUM
    if not chromium.exists():
        print(f"no Chromium at {chromium}: apt-get install chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        directory = Path(folder) / "region"
        write_region(directory, scale=RegionScale(people_per_city=3000, trips_per_city=3000,
                                                  visits_per_city=1000))
        with start_local_region(directory, CITIES):
            region = RegionDirectory(directory)
            manifest, identity = region.open_as(AUTHORITY)
            users = Path(folder) / "users.json"
            Users(users).add(USER, PASSWORD)
            console = start_console(manifest, identity, users_file=users,
                                    listen="127.0.0.1:0", region=region)
            try:
                with sync_playwright() as playwright:
                    browser = playwright.chromium.launch(
                        executable_path=str(chromium), args=LAUNCH_ARGS)
                    page = browser.new_page(base_url=console.url,
                                            viewport={"width": 1440, "height": 900})
                    page.set_default_timeout(60_000)
                    page.goto("/login")
                    page.screenshot(path=args.out / "login.png")
                    page.fill("#login-user", USER)
                    page.fill("#login-password", PASSWORD)
                    page.click("#login-submit")
                    page.wait_for_url("**/region")
                    page.goto("/ask")
                    page.wait_for_selector('#catalog details[data-dataset="population"]')
                    page.click('#catalog details[data-dataset="population"] summary')
                    page.fill("#sql", QUESTION)
                    page.click("#ask")
                    page.wait_for_selector("#answer:not([hidden])")
                    page.wait_for_timeout(500)
                    page.screenshot(path=args.out / "ask.png", full_page=True)
                    page.goto("/checks")
                    page.wait_for_selector("#check option", state="attached")
                    page.select_option("#owner", "tianjin")
                    page.select_option("#partner", "beijing")
                    page.click("#run-check")
                    page.wait_for_selector("#runs tbody tr")
                    page.screenshot(path=args.out / "checks.png", full_page=True)
                    page.goto("/budget")
                    page.wait_for_selector("#budget tbody tr")
                    page.screenshot(path=args.out / "budget.png", full_page=True)
                    time.sleep(11)  # the nodes sign a checkpoint 10 s after a new record
                    page.goto("/region")
                    page.wait_for_selector('#cities tr[data-health="up"] >> nth=4')
                    page.wait_for_timeout(3500)  # a second refresh: checked against the first
                    page.screenshot(path=args.out / "region.png", full_page=True)
                    page.goto("/audit")
                    page.locator("#receipts button.verify").first.click()
                    page.wait_for_selector("#verification-result")
                    page.screenshot(path=args.out / "audit.png", full_page=True)
                    browser.close()
            finally:
                console.stop()
    for name in sorted(args.out.glob("*.png")):
        print(f"wrote {name.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
