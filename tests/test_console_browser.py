"""The console in a real browser (Debian's Chromium under Playwright) against a real region of
five cities: log in, see them up, take one down and see it turn red, ask and read the chart's
values, run out of budget and see the refusal, verify a receipt."""

from __future__ import annotations

import pytest

from tests.browserkit import chromium_or_skip, launch
from tests.consolekit import PASSWORD, PURPOSE, SMALL_BUDGET_POLICY, USER, console_for
from tests.regionkit import CITY_CODES, start_region

CITIES = tuple(CITY_CODES)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    directory = tmp_path_factory.mktemp("console-browser")
    region = start_region(directory, CITIES, rows=200, policy_text=SMALL_BUDGET_POLICY)
    console = console_for(region, directory / "users.json")
    with sync_playwright() as playwright:
        browser = launch(playwright)
        context = browser.new_context(base_url=console.url, viewport={"width": 1400,
                                                                      "height": 900})
        opened = context.new_page()
        opened.set_default_timeout(15_000)
        opened.region = region
        try:
            yield opened
        finally:
            browser.close()
            console.stop()
            region.stop()


def test_log_in_and_see_five_cities_up(page):
    page.goto("/region")
    assert page.url.endswith("/login")
    page.fill("#login-user", USER)
    page.fill("#login-password", "wrong password!")
    page.click("#login-submit")
    assert "Wrong user name or password" in page.locator("#login-error").inner_text()
    page.fill("#login-user", USER)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    page.wait_for_url("**/region")
    page.wait_for_selector('#cities tr[data-health="up"] >> nth=4')
    assert page.locator('#cities tr[data-health="up"]').count() == 5
    assert "5 of 5 cities up" in page.inner_text("#region-summary")
    assert "expires" in page.inner_text('#cities tr[data-city="tianjin"]')


def test_a_city_taken_down_turns_red(page):
    page.goto("/region")
    page.wait_for_selector('#cities tr[data-city="langfang"][data-health="up"]')
    page.region.stop_node("langfang")
    row = page.locator('#cities tr[data-city="langfang"][data-health="down"]')
    row.wait_for()
    colour = row.locator("td.health").evaluate("cell => getComputedStyle(cell).color")
    assert colour == "rgb(179, 38, 30)"  # --bad
    assert "4 of 5 cities up" in page.inner_text("#region-summary")


def test_ask_and_read_the_chart(page):
    page.goto("/ask")
    page.wait_for_selector('#catalog details[data-dataset="population"]')
    page.select_option("#purpose", PURPOSE)
    page.fill("#sql", "SELECT sex, count(*) AS people FROM population GROUP BY sex "
                      "ORDER BY sex")
    page.click("#ask")
    page.wait_for_selector("#answer:not([hidden])")
    chart = page.evaluate("""() => { const c = Chart.getChart('answer-chart');
        return {type: c.config.type, labels: c.data.labels,
                values: c.data.datasets[0].data, errors: c.data.datasets[0].errors}; }""")
    table = page.locator("#answer-table tbody tr").all_inner_texts()
    assert chart["type"] == "bar" and chart["labels"] == ["F", "M"]
    assert [int(v) for v in chart["values"]] == [
        int(row.split("\t")[1].split(" ±")[0].replace(",", "")) for row in table]
    assert all(e > 0 for e in chart["errors"])  # a private answer: 95% intervals drawn
    assert page.locator('#answer-cities tr[data-city="langfang"]').get_attribute(
        "data-status") == "unreachable"
    assert page.locator('#answer-cities tr[data-status="answered"]').count() == 4


def test_an_error_points_at_its_place(page):
    page.goto("/ask")
    sql = "SELECT sex, count(*) FROM population WHERE agee > 3 GROUP BY sex"
    page.fill("#sql", sql)
    page.click("#ask")
    page.wait_for_selector("#sql-error:not([hidden])")
    assert "unknown column 'agee'" in page.inner_text("#sql-message")
    assert page.eval_on_selector("#sql", "e => e.selectionStart") == sql.index("agee")


def test_run_out_of_budget_and_see_the_refusal(page):
    page.goto("/ask")
    page.fill("#sql", "SELECT count(*) FROM population")
    for _ in range(3):  # ε 3 a day, 1 a question: the first question spent 1
        with page.expect_response("**/api/ask"):
            page.click("#ask")
        page.locator("#ask:enabled").wait_for()
    answered = page.locator("#answer-cities tr[data-status='refused']")
    assert answered.count() == 4
    assert "PRIVACY_BUDGET" in page.inner_text("#answer-cities") or \
        "budget" in page.inner_text("#answer-cities").lower()
    page.goto("/budget")
    page.wait_for_selector('#budget tr[data-city="tianjin"]')
    assert "0 of 3" in page.inner_text('#budget tr[data-city="tianjin"]')


def test_verify_a_receipt_with_one_click(page):
    page.goto("/audit")
    page.wait_for_selector("#receipts tr[data-answer] button.verify")
    page.locator("#receipts tr[data-answer] button.verify").last.click()
    result = page.locator("#verification-result")
    result.wait_for()
    assert "every receipt and the merge verify" in result.inner_text()
    assert page.locator("#refused tbody tr").count() >= 1
