"""The UI as a person sees it: headless Chromium on the ``dagster dev`` webserver shows the four
code locations loaded and every asset of each location; screenshots go to artifacts/."""

from __future__ import annotations

import importlib

import dagster as dg
import pytest

from reference_arch_tests.production.webserver import LOCATIONS, graphql

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
