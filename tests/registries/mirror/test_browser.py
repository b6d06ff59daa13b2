"""In Chromium: from a release's image list, mirror the image into a linked registry, watch the
progress bar reach 100 %, see the digest, and point the draft release at the mirrored image.

The portal runs as separate processes (web server, real Celery worker over Redis, a SQLite file
both see: tests/support/processes.py); the two registries are loopback docker-registry
processes. A proxy in front of the source slows blob downloads so the page is seen mid-copy.
"""

import time

import httpx
import pytest
from playwright.sync_api import expect

from tests.support.faults import Proxy
from tests.support.images import build_index, push
from tests.support.processes import PortalStack

pytestmark = [pytest.mark.browser, pytest.mark.slow]
KB = 1 << 10

SETUP = """
from portal.models import Team
from registries.models import ExternalRegistry, Provider
from releases.models import App, Release
team = Team.objects.get(name="Acme")
for name, host, user, pw in ({source!r}, {target!r}):
    r = ExternalRegistry(team=team, provider=Provider.OTHER, name=name, endpoint=host, username=user,
                         insecure=True)
    r.secret = pw
    r.save()
app = App.create_with_channels(team=team, name="Demo", slug="demo")
Release.create_next(app=app, user=None, files=[("deployment.yaml", {deployment!r})])
"""

DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
        - name: app
          image: {image}
"""


class SlowBlobs(Proxy):
    """Every blob download waits 0.4 s: the copy takes a few seconds, not a few milliseconds."""

    def intercept(self, handler, body):
        if handler.command == "GET" and "/blobs/sha256:" in handler.path:
            time.sleep(0.4)
        return False


@pytest.fixture
def image(source_registry):
    index = build_index(layer_sizes=[300 * KB, 200 * KB], shared_size=100 * KB)
    push(index, source_registry.url, "library/app", "1.0", auth=source_registry.auth)
    return index


@pytest.fixture
def slow_source(source_registry):
    with SlowBlobs(source_registry.url) as proxy:
        yield proxy


@pytest.fixture
def stack(request, tmp_path, slow_source, source_registry, target_registry):
    broker = request.getfixturevalue("redis_server")
    portal = PortalStack(tmp_path, broker.url.replace("/0", "/7"), seed="team", debug=True,
                         extra_env={"LOG_LEVEL": "INFO"})
    try:
        portal.start()
        portal.manage("shell", "-c", SETUP.format(
            source=("source", slow_source.host, *source_registry.auth),
            target=("target", target_registry.host, *target_registry.auth),
            deployment=DEPLOYMENT.format(image=f"{slow_source.host}/library/app:1.0")))
        yield portal
    finally:
        portal.stop()


def test_mirror_from_a_release_shows_progress_to_100_and_the_digest_then_updates_the_draft(
        page, stack, image, slow_source, target_registry):
    page.goto(f"{stack.url}/accounts/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(stack.password)
    page.get_by_role("button", name="Log in").click()
    page.goto(f"{stack.url}/apps/demo/releases/1/")

    page.get_by_role("link", name="Mirror image").click()
    expect(page.get_by_label("Source image")).to_have_value(f"{slow_source.host}/library/app:1.0")
    page.get_by_label("Target registry").select_option(label="target")
    page.get_by_label("Target prefix").fill("demo-apps")
    page.get_by_role("button", name="Start mirror").click()

    bar = page.locator("#job-bar")
    # Seen mid-copy first (blob downloads are slowed), then the polled fragment reaches 100 %.
    expect(page.locator("#job-status")).to_have_text("Running", timeout=20_000)
    status, value = page.evaluate(
        "() => [document.querySelector('#job-status').textContent, document.querySelector('#job-bar').value]")
    assert status != "Running" or value < 100
    expect(bar).to_have_attribute("value", "100", timeout=60_000)
    expect(page.locator("#job-status")).to_have_text("Succeeded")
    expect(page.locator("#job-percent")).to_have_text("100 %")
    expect(page.locator("#job-digest")).to_have_text(image.digest)
    assert page.locator("#job-blobs tbody tr").count() == len(image.blobs)

    # The registry has it under the tag, with the source's digest.
    head = httpx.head(f"{target_registry.url}/v2/demo-apps/app/manifests/1.0", auth=target_registry.auth,
                      headers={"Accept": "application/vnd.oci.image.index.v1+json"})
    assert head.headers["docker-content-digest"] == image.digest

    page.get_by_role("link", name="Use it in the draft release of demo").click()
    new_image = f"{target_registry.host}/demo-apps/app:1.0"
    expect(page.locator("#use-mirror-plan")).to_contain_text(f"+ image: {new_image}")
    page.get_by_role("button", name="Use the mirrored image").click()
    expect(page.get_by_role("status")).to_contain_text(f"Release 1 now uses {new_image}")
    expect(page.get_by_label("Content of the file (YAML)")).to_have_value(
        DEPLOYMENT.format(image=new_image))
