"""Airflow's own web UI, in Debian's chromium, as a person setting up Octopush meets it.

Playwright drives the real API server of a running deployment (the one test_e2e.py starts): the
connection form, the Test button for each thing that can go wrong, the DAG's documentation, a
triggered run and its task log, and the providers page. Every step leaves a screenshot in
``build/browser-test/`` (printed at the start), and no page visited may contain the API key.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect, sync_playwright

from octopush_provider import PORT_LABEL
from octopush_provider.hooks.octopush import client_options
from octopush_provider.sandbox import DEFAULT_API_KEY, DEFAULT_API_LOGIN, READ_ONLY_LOGIN
from tests.airflow import test_e2e
from tests.airflow.services import RUN_TIMEOUT, Deployment, free_port, wait_for
from tests.airflow.support import REPO, TASK_ID
from tests.airflow.test_e2e import DAG_ID, WRONG_KEY, save_from_the_form

# The running Airflow of test_e2e.py, started once more for this module.
deployment = test_e2e.deployment

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = REPO / "build" / "browser-test"
DOCUMENTATION_URL = "https://github.com/octopush-connector/airflow-provider-octopush#readme"
UI_TIMEOUT_MS = 30_000
# Each sandbox request of the triggered load takes this long: 300 conversations' messages, 12
# at a time, take 6 s or more, long enough for progress lines to show while the task runs.
WATCHED_LATENCY = 0.25
PROGRESS_LINE = re.compile(r"Octopush messages: \d+ of 300 conversations .* left")


class Visit:
    """The browser page, a screenshot per step, and the text of every page seen."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.seen: list[tuple[str, str]] = []
        self.steps = 0

    def step(self, name: str, *, typed_by_the_user: bool = False) -> None:
        """Screenshot the page; remember its content unless it shows what the user typed."""
        self.steps += 1
        self.page.screenshot(path=SCREENSHOTS / f"{self.steps:02d}-{name}.png", full_page=True)
        if not typed_by_the_user:
            self.seen.append((name, self.page.content()))


@pytest.fixture
def visit() -> Iterator[Visit]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)")
    shutil.rmtree(SCREENSHOTS, ignore_errors=True)
    SCREENSHOTS.mkdir(parents=True)
    print(f"browser test screenshots: {SCREENSHOTS}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(UI_TIMEOUT_MS)
        try:
            yield Visit(page)
        finally:
            browser.close()


def add_connection_through_the_form(visit: Visit, deployment: Deployment) -> dict[str, Any]:
    page = visit.page
    page.goto(f"{deployment.api_url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    form = page.get_by_role("dialog")
    form.get_by_label("Connection ID").fill("octopush_form")
    form.get_by_role("combobox").fill("Octopush")
    page.keyboard.press("Enter")
    for label in ("Base URL", "API login", "API key", PORT_LABEL):
        expect(form.get_by_label(label, exact=True)).to_be_visible()
    visit.step("form-standard-fields")

    form.get_by_label("Base URL", exact=True).fill(deployment.sandbox.base_url)
    form.get_by_label("API login", exact=True).fill(DEFAULT_API_LOGIN)
    form.get_by_label("API key", exact=True).fill(DEFAULT_API_KEY)
    form.get_by_label(PORT_LABEL, exact=True).fill("0")
    form.get_by_role("button", name="Extra Fields", exact=True).click()
    # Values the task would refuse: the form must not keep them.
    form.get_by_label("Page size").fill("0")
    form.get_by_label("Concurrent requests").fill("64")
    form.get_by_label("Connect timeout (seconds)").fill("-5")
    form.get_by_label("Read timeout (seconds)").click()
    for default in ("Empty: 100.", "Empty: 12.", "Empty: 10.", "Empty: 60."):
        expect(form.get_by_text(default, exact=False)).to_be_visible()
    expect(form.get_by_text("(proxies only)", exact=False)).to_be_visible()
    visit.step("form-extra-fields", typed_by_the_user=True)
    form.get_by_role("button", name="Save").click()
    expect(page.get_by_role("row").filter(has_text="octopush_form")).to_be_visible()
    # The form fades out after the list shows the row; until it has gone, the page still holds
    # what the user typed into it.
    expect(form).to_have_count(0)
    visit.step("connection-list")
    stored: dict[str, Any] = deployment.api("GET", "/api/v2/connections/octopush_form").json()
    return stored


def press_test(visit: Visit, deployment: Deployment, connection_id: str) -> str:
    """Press the row's Test button and return what the toast says."""
    page = visit.page
    page.goto(f"{deployment.api_url}/connections")
    row = page.get_by_role("row").filter(
        has=page.get_by_role("cell", name=connection_id, exact=True)
    )
    row.get_by_role("button", name="Test Connection").click()
    toast = page.locator("[data-scope=toast][data-part=root]").first
    expect(toast).to_be_visible()
    visit.step(f"test-{connection_id}")
    return " ".join(toast.inner_text().split())


def log_shows(page: Page, pattern: re.Pattern[str]) -> bool:
    """Whether the task log page, loaded afresh, shows a line matching ``pattern``, once the log
    has come (the page loads it after itself)."""
    page.reload()
    expect(page.get_by_text("Loading Octopush conversations").first).to_be_visible(
        timeout=UI_TIMEOUT_MS
    )
    return page.get_by_text(pattern).count() > 0


def test_a_person_sets_up_octopush_in_the_airflow_ui(deployment: Deployment, visit: Visit) -> None:
    page = visit.page
    page.goto(f"{deployment.api_url}/connections")
    expect(page.get_by_role("button", name="Add Connection")).to_be_visible()

    stored = add_connection_through_the_form(visit, deployment)
    extras = json.loads(stored["extra"])
    assert client_options(extras, where=None)["per_page"] == extras["per_page"] == 1
    assert (extras["concurrency"], extras["connect_timeout"]) == (32, 1)
    assert stored["port"] == 0

    save_from_the_form(deployment, "octopush_wrong_key", port=0, password=WRONG_KEY)
    save_from_the_form(deployment, "octopush_read_only", port=0, login=READ_ONLY_LOGIN)
    unreachable = f"http://127.0.0.1:{free_port()}/v1/public"
    save_from_the_form(deployment, "octopush_unreachable", port=0, host=unreachable)
    save_from_the_form(deployment, "octopush_portless")
    save_from_the_form(deployment, "octopush_port_8443", port=8443)
    sandbox = deployment.sandbox.base_url

    assert press_test(visit, deployment, "octopush_form") == (
        f"Test Connection Successful Octopush accepted the API login and API key at {sandbox}."
    )
    assert press_test(visit, deployment, "octopush_wrong_key") == (
        "Test Connection Failed Wrong API login or API key: Octopush refused API login "
        f"{DEFAULT_API_LOGIN!r} (401)."
    )
    assert press_test(visit, deployment, "octopush_read_only") == (
        f"Test Connection Failed The API key is valid, but API login {READ_ONLY_LOGIN!r} may not "
        "read conversations (403): give the key access to conversations in Octopush."
    )
    assert press_test(visit, deployment, "octopush_unreachable") == (
        f"Test Connection Failed Could not reach Octopush at {unreachable}: check the Base URL "
        "and the network."
    )
    # When this fails, Airflow's UI tests a connection without a port (apache/airflow#73298):
    # drop the "enter 0" label of Port, hide it again, and update the README's Airflow guide.
    assert press_test(visit, deployment, "octopush_portless") == (
        "Test Connection Failed Bad Request"
    )

    assert press_test(visit, deployment, "octopush_port_8443") == (
        f"Test Connection Failed Octopush accepted the API login and API key at {sandbox}. "
        "Port is 8443, but the port is read from the Base URL: write it there "
        "(https://host:8443/...) and set Port to 0."
    )

    wait_for(
        "the DAG processor to register the DAG",
        lambda: deployment.answers(f"/api/v2/dags/{DAG_ID}"),
        timeout=RUN_TIMEOUT,
        diagnose=deployment.diagnose,
    )
    page.goto(f"{deployment.api_url}/dags/{DAG_ID}")
    page.get_by_role("button", name="Dag Docs").click()
    docs = page.get_by_role("dialog")
    expect(docs).to_contain_text(
        "Where the data lands: tables conversations and messages in schema octopush"
    )
    expect(docs).to_contain_text("full_refresh")
    visit.step("dag-docs")
    page.keyboard.press("Escape")
    page.get_by_role("button", name="Trigger Dag").click()
    trigger = page.get_by_role("dialog")
    expect(trigger.get_by_text("Full refresh")).to_be_visible()
    expect(trigger.get_by_text("Drop the table and the cursor, then load every")).to_be_visible()
    visit.step("trigger-dialog")
    deployment.sandbox.latency = WATCHED_LATENCY
    trigger.get_by_role("button", name="Trigger", exact=True).click()
    runs = wait_for(
        "the triggered run to appear",
        lambda: deployment.api("GET", f"/api/v2/dags/{DAG_ID}/dagRuns").json()["dag_runs"],
        timeout=RUN_TIMEOUT,
        diagnose=deployment.diagnose,
    )
    run_id = runs[0]["dag_run_id"]
    page.goto(f"{deployment.api_url}/dags/{DAG_ID}/runs/{run_id}/tasks/{TASK_ID}")
    wait_for(
        "a progress line in the log of the running task",
        lambda: log_shows(page, PROGRESS_LINE),
        timeout=RUN_TIMEOUT,
        diagnose=deployment.diagnose,
    )
    assert deployment.run_state(DAG_ID, run_id) is None, "the run ended before its log was read"
    visit.step("task-log-while-running")
    state = wait_for(
        "the triggered run to finish",
        lambda: deployment.run_state(DAG_ID, run_id),
        timeout=RUN_TIMEOUT,
        diagnose=deployment.diagnose,
    )
    deployment.sandbox.latency = 0.0
    assert state == "success", deployment.diagnose()
    page.reload()
    for line in (
        r"loaded into duckdb:octopush in [\dms .]+ \(load id [\d.]+\)",
        r"conversations: 300 new, 0 updated, 0 unchanged \(docs/summary.md#conversations\)",
        r"messages: \d+ from 300 conversations \(300 requests\)",
    ):
        expect(page.get_by_text(re.compile(line))).to_be_visible()
    assert "deprecated" not in page.locator("body").inner_text()
    visit.step("task-log")

    page.goto(f"{deployment.api_url}/providers")
    link = page.get_by_role("link", name="airflow-provider-octopush")
    expect(link).to_have_attribute("href", DOCUMENTATION_URL)
    visit.step("providers")

    for key in (DEFAULT_API_KEY, WRONG_KEY):
        assert [name for name, content in visit.seen if key in content] == [], SCREENSHOTS
