"""The UI as a person sees it: headless Chromium on the ``dagster dev`` webserver shows the four
code locations loaded and every asset of each location, the question jobs' launchpads ready to launch,
an answer page with its question, mode and k, and the registry's lineage; screenshots go to artifacts/."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from reference_arch.common.locations import LOCATIONS
from reference_arch.testkit.webserver import graphql

ASSET_NODES = "{ assetNodes { assetKey { path } groupName repository { location { name } } } }"


def defined_keys(location: str) -> set[str]:
    """The asset keys the location's definitions define (what its graph must show)."""
    defs = importlib.import_module(f"reference_arch.{location}.definitions").defs
    keys = set()
    for item in defs.assets or []:
        specs = item.specs if isinstance(item, dg.AssetsDefinition) else [item]
        keys |= {spec.key.to_user_string() for spec in specs}
    return keys


def open_page(page, url: str):
    page.goto(url)
    page.wait_for_load_state("networkidle")
    skip = page.get_by_role("button", name="Skip")  # the first-visit "join the community" dialog
    if skip.count():
        skip.first.click()
    return page


@pytest.fixture(scope="module")
def page(chromium):
    page = chromium.new_page()
    yield page
    page.close()


def test_the_webserver_serves_every_location_and_asset(webserver):
    nodes = graphql(webserver.url, ASSET_NODES)["assetNodes"]
    served: dict[str, set[str]] = {}
    for node in nodes:
        served.setdefault(node["repository"]["location"]["name"], set()).add("/".join(node["assetKey"]["path"]))
    for location in LOCATIONS:
        assert defined_keys(location) <= served.get(location, set()), location


def test_locations_page_shows_four_loaded_locations(page, webserver, artifacts_dir):
    open_page(page, f"{webserver.url}/locations")
    for location in LOCATIONS:
        # The location's row: the nearest block around its link that says "Loaded".
        link = page.locator(f'a[href="/locations/{location}/"]').first
        link.wait_for()
        row = link.locator("xpath=ancestor::div[.//text()[normalize-space()='Loaded']][1]")
        others = [o for o in LOCATIONS if o != location]
        assert not any(row.locator(f'a[href="/locations/{o}/"]').count() for o in others), f"{location}: no Loaded row"
        assert f"reference_arch.{location}.definitions" in row.inner_text()
    page.screenshot(path=str(artifacts_dir / "locations.png"), full_page=True)


def expand_all_groups(page) -> None:
    """The graph's context menu: "Expand all groups" (then a reload fits the whole graph)."""
    size = page.viewport_size
    for x, y in [(0.95, 0.5), (0.6, 0.95), (0.95, 0.15), (0.4, 0.2)]:  # empty canvas, wherever it is
        page.mouse.click(size["width"] * x, size["height"] * y, button="right")
        item = page.get_by_role("menuitem", name="Expand all groups")
        try:
            item.wait_for(timeout=2000)
        except Exception:  # noqa: BLE001 - a node's menu, not the canvas's: try elsewhere
            page.keyboard.press("Escape")
            continue
        item.click()
        return
    raise AssertionError("the asset graph's menu has no 'Expand all groups'")


def test_asset_graph_renders_every_location(page, webserver, artifacts_dir):
    expected = {location: defined_keys(location) for location in LOCATIONS}
    page.set_viewport_size({"width": 1920, "height": 1200})  # the picture in the README
    open_page(page, f"{webserver.url}/asset-groups")
    groups = [location for location, keys in expected.items() if keys]  # a group is drawn once it has assets
    if len(groups) > 1:  # several groups are drawn collapsed: open them all for the picture
        page.locator('[role=img][aria-label="unfold_more"]').first.wait_for()
        expand_all_groups(page)
    hide_navigation = page.get_by_role("button", name="Hide navigation")
    if hide_navigation.count():  # more room for the graph in the picture
        hide_navigation.click()
    page.reload()
    page.wait_for_load_state("networkidle")
    for location in groups:  # each group's box, with an asset node drawn in it (short names are not truncated)
        page.get_by_text(location, exact=True).first.wait_for()
        shortest = min((key.split("/", 1)[1] for key in expected[location]), key=len)
        page.get_by_text(shortest, exact=True).first.wait_for()
    assert page.locator('[role=img][aria-label="unfold_more"]').count() == 0, "a group stayed collapsed"
    page.wait_for_timeout(1000)  # let the layout settle before the picture
    page.screenshot(path=str(artifacts_dir / "asset-graph.png"))

    # Every asset of every location, in the location's own catalog (keys are prefixed with it).
    page.set_viewport_size({"width": 1920, "height": 4000})  # the catalog draws only rows in view
    try:
        for location, keys in expected.items():
            open_page(page, f"{webserver.url}/assets/{location}")
            names = sorted(key.split("/", 1)[1] for key in keys)
            if names:
                page.get_by_text(names[0], exact=True).first.wait_for()
            shown = page.locator("body").inner_text().split("\n")
            missing = [name for name in names if name not in shown]
            assert not missing, f"{location}: {missing} not in the catalog"
            page.screenshot(path=str(artifacts_dir / f"catalog-{location}.png"))
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})


def test_answer_asset_page_shows_description_kinds_and_source(page, webserver, artifacts_dir):
    from pathlib import Path

    from reference_arch.prompt.definitions import defs

    key = dg.AssetKey(["prompt", "answer"])
    spec = defs.get_assets_def(key).specs_by_key[key]
    open_page(page, f"{webserver.url}/assets/prompt/answer")
    page.get_by_text(spec.description[:40]).first.wait_for()
    text = page.locator("body").inner_text().lower().replace(" ", "")  # "Hugging Face" is kind "huggingface"
    assert all(kind in text for kind in spec.kinds), (spec.kinds, text[:3000])
    source = Path(spec.metadata["dagster/code_references"].code_references[0].file_path).name
    assert source.lower() in text, "no link to the source"
    page.screenshot(path=str(artifacts_dir / "prompt-answer.png"), full_page=True)


# -- the question jobs' launchpads, a question launched from one, and what its answer page shows ------------
QUESTION_JOBS = {"prompt": "prompt_question_job", "rag": "rag_question_job", "finetune": "finetuned_question_job"}
# The UI opens a partitioned job's launchpad with an unset, red partition picker and no way to preset it
# (dagster-webui 1.13: useInitialDataForMode gives presets only to unpartitioned jobs), so no question job
# is partitioned: the prompt template is run config (ops.prompt__prompt.config.template, with a default).
RUN_STATUS = "query Status($runId: ID!) { runOrError(runId: $runId) { ... on Run { status } } }"


def open_launchpad(page, url: str, location: str, job: str):
    open_page(page, f"{url}/locations/{location}/jobs/{job}/playground")
    launch = page.get_by_role("button", name="Launch Run")
    launch.wait_for()
    page.get_by_text("No errors").first.wait_for()  # the config's validation has answered
    return launch


def assert_launchpad_valid(page, launch, job: str) -> None:
    """What a person sees as ready: no red (danger) input such as an unset partition picker, the default
    config valid, and a Launch button that launches without a "partition missing" prompt."""
    from playwright.sync_api import expect

    red = page.locator('input[style*="accent-red"]')  # an input in error: its stroke is the red accent
    assert red.count() == 0, f"{job}: red inputs {[red.nth(i).get_attribute('placeholder') for i in range(red.count())]}"
    assert page.get_by_placeholder("Partition").count() == 0, f"{job}: the launchpad asks for a partition"
    expect(launch).to_be_enabled(timeout=60_000)  # once the config is validated


def wait_for_run(url: str, run_id: str, timeout: float = 420) -> str:
    import time

    deadline = time.monotonic() + timeout
    status = None
    while time.monotonic() < deadline:
        status = graphql(url, RUN_STATUS, {"runId": run_id})["runOrError"].get("status")
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(1)
    raise AssertionError(f"run {run_id} still {status} after {timeout}s")


@pytest.mark.parametrize("location", ["prompt", "rag", "finetune"])
def test_question_job_launchpad_opens_valid(page, webserver, artifacts_dir, location):
    job = QUESTION_JOBS[location]
    launch = open_launchpad(page, webserver.url, location, job)
    page.screenshot(path=str(artifacts_dir / f"launchpad-{job}.png"))
    assert_launchpad_valid(page, launch, job)
    text = page.locator("body").inner_text()
    assert "question:" in text, f"{job}: the launchpad's config has no question"


@pytest.fixture(scope="module")
def rag_index(webserver, tmp_path_factory):
    """The tiny index in the webserver's home and instance (what `reference-arch materialize rag` builds)."""
    from reference_arch_tests.production.test_graphql_client import build_rag_index_for

    with pytest.MonkeyPatch.context() as monkeypatch:
        build_rag_index_for(webserver, tmp_path_factory.mktemp("rag-exports"), monkeypatch)


@pytest.mark.parametrize("location", ["prompt", "rag"])
def test_a_question_launched_from_the_launchpad_succeeds(page, webserver, rag_index, location):
    job = QUESTION_JOBS[location]
    launch = open_launchpad(page, webserver.url, location, job)
    assert_launchpad_valid(page, launch, job)
    launch.click()
    page.wait_for_url("**/runs/*", timeout=60_000)  # no confirmation asked: the launch goes straight to the run
    run_id = page.url.rstrip("/").split("/runs/")[1].split("?")[0]
    assert wait_for_run(webserver.url, run_id) == "SUCCESS", webserver.log_tail()


def test_rag_answer_page_shows_question_mode_and_k(page, webserver, rag_index, artifacts_dir):
    """The answer's latest materialization, as a person opens it: the question, the retrieval mode and k."""
    from urllib.parse import urlsplit

    from dagster_graphql import DagsterGraphQLClient

    from reference_arch.common.questions import question_run_config

    question = "How do I rename the index of a Series?"
    url = urlsplit(webserver.url)
    client = DagsterGraphQLClient(url.hostname, port_number=url.port, timeout=60)
    run_config = question_run_config("rag", question)
    run_config["ops"]["rag__retrieved_sources"] = {"config": {"k": 3, "mode": "hybrid"}}
    run_id = client.submit_job_execution("rag_question_job", repository_location_name="rag", run_config=run_config)
    assert wait_for_run(webserver.url, run_id) == "SUCCESS", webserver.log_tail()

    page.set_viewport_size({"width": 1600, "height": 1400})
    try:
        open_page(page, f"{webserver.url}/assets/rag/answer?view=events")
        page.get_by_text(question).first.wait_for()
        rows = page.locator("body").inner_text().split("\n")
        for label, value in [("question", question), ("mode", "hybrid"), ("k", "3")]:
            assert label in rows and value in rows, (label, value, rows)
        page.screenshot(path=str(artifacts_dir / "rag-answer.png"))
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})


ANSWERS_AND_MODELS = ('key:"prompt/answer" or key:"rag/answer" or key:"pretrain/published_model" '
                      'or key:"finetune/published_model"')


def test_registry_lineage_draws_answers_downstream_of_published_models(page, webserver, artifacts_dir):
    """The global asset graph, narrowed to the answers and the published models: edges across locations."""
    nodes = graphql(webserver.url, "{ assetNodes { assetKey { path } dependencyKeys { path } } }")["assetNodes"]
    upstream = {"/".join(n["assetKey"]["path"]): {"/".join(d["path"]) for d in n["dependencyKeys"]} for n in nodes}
    for answer in ("prompt/answer", "rag/answer"):  # the edges the picture draws
        assert {"pretrain/published_model", "finetune/published_model"} <= upstream[answer], upstream[answer]
    page.set_viewport_size({"width": 1600, "height": 1100})
    try:
        open_page(page, f"{webserver.url}/asset-groups")
        search = page.locator(".CodeMirror").first  # the selection input is a CodeMirror editor
        search.click()
        page.keyboard.type(ANSWERS_AND_MODELS)
        page.keyboard.press("Enter")
        page.wait_for_timeout(2000)
        if page.locator('[role=img][aria-label="unfold_more"]').count():
            expand_all_groups(page)
        page.reload()
        page.wait_for_load_state("networkidle")
        page.get_by_text("published_model", exact=True).first.wait_for()
        zoom_out = page.locator('[role=img][aria-label="zoom_out"]').first
        for _ in range(3):  # the four groups and their edges in one view
            zoom_out.click()
            page.wait_for_timeout(300)
        page.get_by_text("published_model", exact=True).first.wait_for()
        for name in ("answer", "published_model"):  # two of each, one per location
            page.get_by_text(name, exact=True).nth(1).wait_for()
        page.wait_for_timeout(1500)  # let the layout settle before the picture
        page.screenshot(path=str(artifacts_dir / "registry-lineage.png"))
    finally:
        page.set_viewport_size({"width": 1600, "height": 1000})
