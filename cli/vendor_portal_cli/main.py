"""``vendor-portal``: the vendor portal's API from a pipeline, in the shape of Replicated's CLI.

Configuration: VENDOR_PORTAL_URL, VENDOR_PORTAL_APP and VENDOR_PORTAL_API_TOKEN (or the flags
``--url``, ``--app``, ``--token-stdin``). There is no ``--token`` flag: arguments show in process
lists and CI logs. Exit codes: 0 done, 1 refused or failed (the API's message on stderr),
2 usage (a missing or bad flag, no token, no app).
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import click
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeElapsedColumn

from . import __version__
from .client import ApiError, Client
from .output import emit, stderr

DEFAULT_URL = "http://127.0.0.1:8000"
MANIFEST_SUFFIXES = {".yaml", ".yml"}
FAILED = {"failed", "failing", "error"}
DONE = {"succeeded", "failed", "canceled", "connected", "passed", "ok", "error", "skipped"}


class Refused(click.ClickException):
    """Exit 1 with the API's message (and its per-field errors)."""

    exit_code = 1

    def show(self, file=None) -> None:
        stderr.print(f"[bold red]Error:[/] {self.message}", highlight=False, markup=True)


def refused(error: ApiError, prefix: str = "") -> Refused:
    lines = [prefix + error.message]
    for name, messages in error.errors.items():
        for message in messages if isinstance(messages, list) else [messages]:
            lines.append(f"  {name}: {message}")
    if "promoteAnyway" in error.errors:
        lines.append("Add --allow-failing-images to promote anyway.")
    return Refused("\n".join(lines))


@dataclass
class Settings:
    url: str
    app: str | None
    output: str
    token_stdin: bool

    def client(self) -> Client:
        token = _read_token(self.token_stdin)
        return Client(self.url, token)


def _read_token(from_stdin: bool) -> str:
    if from_stdin:
        token = sys.stdin.readline().strip()
        if not token:
            raise click.UsageError("--token-stdin: standard input held no token.")
        return token
    token = os.environ.get("VENDOR_PORTAL_API_TOKEN", "").strip()
    if not token:
        raise click.UsageError(
            "No API token: set VENDOR_PORTAL_API_TOKEN or pipe it in with --token-stdin "
            "(the portal's Tokens page makes one).")
    return token


def common(func):
    """The options every command takes (flags win over the environment)."""

    @click.option("--url", envvar="VENDOR_PORTAL_URL", default=DEFAULT_URL, show_default=True,
                  help="The portal's base URL (VENDOR_PORTAL_URL).")
    @click.option("--app", envvar="VENDOR_PORTAL_APP",
                  help="The app's slug or ID (VENDOR_PORTAL_APP).")
    @click.option("--token-stdin", is_flag=True,
                  help="Read the API token from standard input instead of VENDOR_PORTAL_API_TOKEN.")
    @click.option("--output", type=click.Choice(["table", "json"]), default="table",
                  show_default=True, help="Table for people, JSON for scripts.")
    @functools.wraps(func)
    def wrapper(url, app, token_stdin, output, **kwargs):
        settings = Settings(url=url, app=app, output=output, token_stdin=token_stdin)
        try:
            return func(settings, **kwargs)
        except ApiError as e:
            raise refused(e) from None

    return wrapper


# --- resolving names --------------------------------------------------------------------------


def app_id(settings: Settings, client: Client) -> str:
    """The app's ID from its slug or ID (Replicated's CLI resolves the same way)."""
    if not settings.app:
        raise click.UsageError("No app: set VENDOR_PORTAL_APP or pass --app SLUG.")
    for app in client.get("/apps").get("apps", []):
        if settings.app in (str(app.get("id")), app.get("slug"), app.get("name")):
            return str(app["id"])
    raise Refused(f"no app {settings.app!r} for this token: check VENDOR_PORTAL_APP "
                  f"(`vendor-portal app ls` lists the apps it can see).")


def channel_for(client: Client, app: str, name_or_id: str) -> dict:
    channels = client.get(f"/app/{app}/channels").get("channels", [])
    for channel in channels:
        if name_or_id in (str(channel.get("id")), channel.get("name"), channel.get("channelSlug")):
            return channel
    names = ", ".join(c.get("name", "") for c in channels) or "none"
    raise Refused(f"no channel {name_or_id!r} in this app (channels: {names}).")


def read_yaml_dir(directory: str) -> list[dict]:
    """Every .yaml/.yml file under ``directory`` as Replicated's release spec entries."""
    root = Path(directory)
    if not root.is_dir():
        raise click.BadParameter(f"{directory} is not a directory.", param_hint="--yaml-dir")
    spec = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in MANIFEST_SUFFIXES):
        relative = path.relative_to(root).as_posix()
        try:
            content = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise click.BadParameter(f"{relative} is not UTF-8 text.", param_hint="--yaml-dir") from None
        spec.append({"name": path.name, "path": relative, "content": content, "children": []})
    if not spec:
        raise click.BadParameter(f"no .yaml or .yml files in {directory}.", param_hint="--yaml-dir")
    return spec


def parse_duration(value: str) -> timedelta:
    """``30d``, ``72h``, ``90m``, ``3600s`` (Go-style units, plus days)."""
    match = re.fullmatch(r"(\d+)([dhms])", value.strip())
    if not match:
        raise click.BadParameter("use a number and a unit: 30d, 72h, 90m.", param_hint="--expires-in")
    number, unit = int(match.group(1)), match.group(2)
    return timedelta(**{{"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}[unit]: number})


def status_of(body: dict, *keys: str) -> dict:
    """The object holding ``status`` in an answer (top level or under one of ``keys``)."""
    if "status" in body:
        return body
    for key in keys:
        if isinstance(body.get(key), dict) and "status" in body[key]:
            return body[key]
    return body


def poll(client: Client, url: str, *, timeout: float, key: str | None = None,
         on_progress=None) -> dict:
    """GET ``url`` until its status is final or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while True:
        body = client.follow(url)
        state = status_of(body, *(key,) if key else ())
        if on_progress:
            on_progress(state)
        if str(state.get("status", "")).lower() in DONE:
            return body
        if time.monotonic() > deadline:
            raise Refused(f"still {state.get('status')!r} after {timeout:.0f} s; poll {url} "
                          f"or run the command again with a longer --timeout.")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)


# --- the commands -----------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="vendor-portal")
def main_group():
    """Release, promote, and manage customers and registries of the vendor portal from CI."""


@main_group.group()
def app():
    """Apps the token can see."""


@app.command("ls")
@common
def app_ls(settings: Settings):
    """List the apps."""
    with settings.client() as client:
        apps = client.get("/apps").get("apps", [])
    emit(settings.output, apps, [("ID", "id"), ("NAME", "name"), ("SLUG", "slug")])


@main_group.group()
def release():
    """Create, list, promote and demote releases."""


@release.command("create")
@common
@click.option("--yaml-dir", required=True, help="Directory of the release's Kubernetes YAML files.")
@click.option("--promote", "promote_to", metavar="CHANNEL", help="Channel name or ID to promote to.")
@click.option("--version", "version_label", help="Version label in the channel (with --promote).")
@click.option("--release-notes", default="", help="Release notes (with --promote).")
@click.option("--required", is_flag=True, help="Customers cannot skip this release (with --promote).")
@click.option("--allow-failing-images", is_flag=True,
              help="Promote even when the image check says customers cannot pull some images.")
def release_create(settings: Settings, yaml_dir, promote_to, version_label, release_notes, required,
                   allow_failing_images):
    """Create a release from a directory of YAML files, and promote it."""
    if (version_label or release_notes or required) and not promote_to:
        raise click.UsageError("--version, --release-notes and --required go with --promote CHANNEL.")
    if promote_to and not version_label:
        raise click.UsageError("--promote needs --version (the version label customers see).")
    spec = read_yaml_dir(yaml_dir)
    with settings.client() as client:
        app = app_id(settings, client)
        channel = channel_for(client, app, promote_to) if promote_to else None
        body = client.create(f"/app/{app}/release", {"spec_gzip": _gzip_spec(spec)})
        created = body.get("release", body)
        sequence = created["sequence"]
        promoted = None
        if channel:
            try:
                promoted = client.post(f"/app/{app}/release/{sequence}/promote", {
                    "channelIds": [channel["id"]], "versionLabel": version_label,
                    "releaseNotes": release_notes, "isRequired": required,
                    "promoteAnyway": allow_failing_images,
                })
            except ApiError as e:
                # The release exists: say so, so the pipeline promotes it rather than making another.
                raise refused(e, f"release {sequence} was created but not promoted to "
                                 f"{channel['name']}: ") from None
    if settings.output == "json":
        emit("json", {"release": created, **({"promotion": promoted} if promoted else {})}, [])
        return
    stderr.print(f"SEQUENCE: {sequence}", highlight=False)
    if channel:
        stderr.print(f"Promoted release {sequence} to {channel['name']} as {version_label}",
                     highlight=False)


def _gzip_spec(spec: list[dict]) -> str:
    """The spec as Replicated's client sends it: gzipped JSON, base64 in ``spec_gzip``."""
    return base64.b64encode(gzip.compress(json.dumps(spec).encode(), mtime=0)).decode()


@release.command("ls")
@common
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 1000),
              help="How many releases, newest first.")
def release_ls(settings: Settings, limit):
    """List releases, newest first."""
    releases = []
    with settings.client() as client:
        app = app_id(settings, client)
        page = 0
        while len(releases) < limit:
            batch = client.get(f"/app/{app}/releases", currentPage=page,
                               pageSize=min(100, limit)).get("releases", [])
            if not batch:
                break
            releases.extend(batch)
            page += 1
    releases = releases[:limit]
    rows = [{**r, "channels": [c.get("name") for c in r.get("channels") or []]} for r in releases]
    emit(settings.output, releases, [("SEQUENCE", "sequence"), ("CREATED", "created"),
                                     ("EDITED", "updated"), ("ACTIVE_CHANNELS", "channels")], rows)


@release.command("promote")
@common
@click.argument("sequence", type=int)
@click.argument("channel")
@click.option("--version", "version_label", required=True, help="Version label in the channel.")
@click.option("--release-notes", default="", help="Release notes.")
@click.option("--required", is_flag=True, help="Customers cannot skip this release.")
@click.option("--allow-failing-images", is_flag=True,
              help="Promote even when the image check says customers cannot pull some images.")
def release_promote(settings: Settings, sequence, channel, version_label, release_notes, required,
                    allow_failing_images):
    """Promote release SEQUENCE to CHANNEL (name or ID)."""
    with settings.client() as client:
        app = app_id(settings, client)
        target = channel_for(client, app, channel)
        body = client.post(f"/app/{app}/release/{sequence}/promote", {
            "channelIds": [target["id"]], "versionLabel": version_label,
            "releaseNotes": release_notes, "isRequired": required,
            "promoteAnyway": allow_failing_images,
        })
    if settings.output == "json":
        emit("json", body, [])
    else:
        stderr.print(f"Channel {target['name']} successfully set to release {sequence}",
                     highlight=False)


@release.command("demote")
@common
@click.argument("channel")
@click.option("--channel-sequence", type=int, help="The channel sequence to demote.")
@click.option("--release-sequence", type=int, help="The release sequence to demote.")
def release_demote(settings: Settings, channel, channel_sequence, release_sequence):
    """Demote a release from CHANNEL: customers stop getting it; its sequence is not reused."""
    if (channel_sequence is None) == (release_sequence is None):
        raise click.UsageError("Give exactly one of --channel-sequence or --release-sequence.")
    with settings.client() as client:
        app = app_id(settings, client)
        target = channel_for(client, app, channel)
        base = f"/app/{app}/channel/{quote(str(target['id']), safe='')}"
        if channel_sequence is None:
            entries = client.get(f"{base}/releases").get("releases", [])
            match = [e for e in entries if e.get("sequence") == release_sequence
                     and not e.get("isDemoted")]
            if not match:
                raise Refused(f"release {release_sequence} is not live in {target['name']}.")
            channel_sequence = match[0]["channelSequence"]
        body = client.post(f"{base}/release/{channel_sequence}/demote")
    if settings.output == "json":
        emit("json", body, [])
    else:
        stderr.print(f"Demoted channel sequence {channel_sequence} from {target['name']}",
                     highlight=False)


@main_group.group()
def channel():
    """The app's channels."""


@channel.command("ls")
@common
def channel_ls(settings: Settings):
    """List the app's channels and what each one serves."""
    with settings.client() as client:
        app = app_id(settings, client)
        channels = client.get(f"/app/{app}/channels").get("channels", [])
    emit(settings.output, channels, [("ID", "id"), ("NAME", "name"), ("RELEASE", "releaseSequence"),
                                     ("VERSION", "currentVersion")])


@main_group.group()
def customer():
    """Customers and their licenses."""


@customer.command("create")
@common
@click.option("--name", required=True, help="The customer's name.")
@click.option("--channel", "channel_name", required=True, help="The channel the customer follows.")
@click.option("--email", default="", help="The customer's email address.")
@click.option("--type", "license_type", default="dev", show_default=True,
              type=click.Choice(["dev", "trial", "paid", "community"]), help="License type.")
@click.option("--expires-in", help="License expiry from now: 30d, 72h, 90m.")
def customer_create(settings: Settings, name, channel_name, email, license_type, expires_in):
    """Create a customer on a channel (the license ID is not printed: download the license)."""
    expires_at = ((datetime.now(UTC) + parse_duration(expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ")
                  if expires_in else "")
    with settings.client() as client:
        app = app_id(settings, client)
        target = channel_for(client, app, channel_name)
        body = client.create("/customer", {
            "name": name, "app_id": app, "email": email, "type": license_type,
            "expires_at": expires_at,
            "channels": [{"channel_id": target["id"], "is_default_for_customer": True}],
        })
    created = body.get("customer", body)
    emit(settings.output, created, CUSTOMER_COLUMNS)


CUSTOMER_COLUMNS = [("ID", "id"), ("NAME", "name"), ("CHANNELS", "channels"),
                    ("EXPIRES", "expiresAt"), ("TYPE", "type")]


@customer.command("ls")
@common
def customer_ls(settings: Settings):
    """List the app's customers (no license IDs)."""
    customers = []
    with settings.client() as client:
        app = app_id(settings, client)
        page = 0
        while True:
            body = client.get(f"/app/{app}/customers", currentPage=page)
            batch = body.get("customers", [])
            customers.extend(batch)
            if not batch or len(customers) >= int(body.get("totalCustomers", len(customers))):
                break
            page += 1
    emit(settings.output, customers, CUSTOMER_COLUMNS)


@customer.command("download-license")
@common
@click.option("--customer", "customer_id", required=True, help="The customer's ID.")
@click.option("-o", "--output-file", "output_file", default="-", show_default=True,
              help="Where to write the license file (- for standard output).")
def customer_download_license(settings: Settings, customer_id, output_file):
    """Download a customer's signed license file."""
    with settings.client() as client:
        app = app_id(settings, client)
        license_bytes = client.download(
            f"/app/{app}/customer/{quote(customer_id, safe='')}/license-download")
    if output_file == "-":
        sys.stdout.buffer.write(license_bytes)
        return
    path = Path(output_file)
    path.write_bytes(license_bytes)
    path.chmod(0o600)  # it carries the customer's credential
    stderr.print(f"License written to {path}", highlight=False)


@main_group.group()
def registry():
    """External registries linked to the team."""


@registry.group("add")
def registry_add():
    """Link an external registry."""


@registry_add.command("ecr")
@common
@click.option("--endpoint", required=True,
              help="<account>.dkr.ecr.<region>.amazonaws.com")
@click.option("--access-key-id", required=True, help="The read-only IAM user's Access Key ID.")
@click.option("--secret-access-key-stdin", is_flag=True,
              help="Read the Secret Access Key from standard input "
                   "(else VENDOR_PORTAL_ECR_SECRET_ACCESS_KEY).")
@click.option("--test-image", default="", help="An image the keys must be able to read.")
@click.option("--skip-validation", is_flag=True, help="Link without checking the keys now.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the worker's check of the keys.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def registry_add_ecr(settings: Settings, endpoint, access_key_id, secret_access_key_stdin,
                     test_image, skip_validation, wait, timeout):
    """Link Amazon ECR. The secret never goes on the command line."""
    if secret_access_key_stdin and settings.token_stdin:
        raise click.UsageError("--token-stdin and --secret-access-key-stdin cannot share standard input.")
    if secret_access_key_stdin:
        secret = sys.stdin.readline().strip()
    else:
        secret = os.environ.get("VENDOR_PORTAL_ECR_SECRET_ACCESS_KEY", "").strip()
    if not secret:
        raise click.UsageError("No Secret Access Key: pipe it in with --secret-access-key-stdin or "
                               "set VENDOR_PORTAL_ECR_SECRET_ACCESS_KEY.")
    with settings.client() as client:
        body = client.create("/external_registry", {
            "provider": "ecr", "endpoint": endpoint, "authType": "password",
            "username": access_key_id, "password": secret, "skipValidation": skip_validation,
            **({"image": test_image} if test_image else {}),
        })
        body = _wait_if_pending(client, body, wait, timeout, "external_registry")
    _report_status(settings, body, "external_registry", [
        ("ENDPOINT", "endpoint"), ("PROVIDER", "provider"), ("USERNAME", "username"),
        ("STATUS", "status"), ("MESSAGE", "message")])


@registry.command("ls")
@common
def registry_ls(settings: Settings):
    """List linked registries (never their secrets)."""
    with settings.client() as client:
        registries = client.get("/external_registries").get("external_registries", [])
    emit(settings.output, registries, [("PROVIDER", "provider"), ("ENDPOINT", "endpoint"),
                                       ("USERNAME", "username"), ("STATUS", "status")])


@registry.command("test")
@common
@click.option("--endpoint", required=True, help="The linked registry's endpoint.")
@click.option("--image", default="", help="An image the stored credentials must be able to read.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def registry_test(settings: Settings, endpoint, image, wait, timeout):
    """Check a linked registry's credentials now (exit 1 when they fail)."""
    with settings.client() as client:
        response = client.request("PUT", "/external_registry/test", retry=False,
                                  json={"endpoint": endpoint, "image": image})
        body = client._json(response)
        body = _wait_if_pending(client, body, wait, timeout, "external_registry")
    _report_status(settings, body, "external_registry",
                   [("ENDPOINT", "endpoint"), ("STATUS", "status"), ("MESSAGE", "message")],
                   default={"endpoint": endpoint})


def _wait_if_pending(client: Client, body: dict, wait: bool, timeout: float, key: str) -> dict:
    """Follow the poll URL of a 202 answer (the worker is still checking) when asked to."""
    url = body.get("url") or body.get("pollUrl")
    state = str(status_of(body, key).get("status", "")).lower()
    if wait and url and state not in DONE:
        return poll(client, url, timeout=timeout, key=key)
    return body


def _report_status(settings: Settings, body: dict, key: str, columns, default=None) -> None:
    state = {**(default or {}), **(body.get(key) or {}), **{k: v for k, v in body.items()
                                                           if k in ("status", "message")}}
    emit(settings.output, body if settings.output == "json" else state, columns, [state])
    if str(state.get("status", "")).lower() in FAILED:
        raise Refused(state.get("message") or "the registry check failed.")


@main_group.group()
def mirror():
    """Copy images into a linked registry."""


@mirror.command("create")
@common
@click.argument("source")
@click.argument("target")
@click.option("--platform", "platforms", multiple=True, help="Copy only these platforms (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the copy, with a progress bar.")
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait.")
def mirror_create(settings: Settings, source, target, platforms, wait, timeout):
    """Copy image SOURCE to TARGET (registry/repository:tag of a linked registry)."""
    with settings.client() as client:
        body = client.create("/mirror_job", {"source": source, "target": target,
                                             "platforms": list(platforms)})
        job = body.get("mirror_job", body)
        if wait and str(job.get("status", "")).lower() not in DONE:
            job = _watch_mirror(client, job, timeout)
    emit(settings.output, job, [("ID", "id"), ("SOURCE", "source"), ("TARGET", "target"),
                                ("STATUS", "status"), ("DIGEST", "digest"), ("ERROR", "error")])
    if str(job.get("status", "")).lower() in FAILED | {"canceled"}:
        raise Refused(job.get("error") or job.get("message") or f"the mirror job {job['status']}.")


def _watch_mirror(client: Client, job: dict, timeout: float) -> dict:
    url = job.get("url") or f"/mirror_job/{job['id']}"
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeElapsedColumn(), console=stderr, transient=False) as progress:
        task = progress.add_task(f"Mirroring {job.get('source', '')}", total=None)

        def update(state: dict) -> None:
            total = state.get("bytesTotal") or None
            progress.update(task, total=total, completed=state.get("bytesDone") or 0,
                            description=f"{state.get('status', '')} {job.get('source', '')}")

        body = poll(client, url, timeout=timeout, key="mirror_job", on_progress=update)
    return body.get("mirror_job", body)


@main_group.group()
def image():
    """The image check: can customers pull each image of a release?"""


@image.command("check")
@common
@click.option("--release", "sequence", type=int, help="Release sequence (default: the newest).")
@click.option("--wait", is_flag=True, help="Wait until no image is still being checked.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def image_check(settings: Settings, sequence, wait, timeout):
    """Show the image check of a release; exit 1 when customers cannot pull an image."""
    with settings.client() as client:
        app = app_id(settings, client)
        if sequence is None:
            newest = client.get(f"/app/{app}/releases", currentPage=0, pageSize=1).get("releases")
            if not newest:
                raise Refused("the app has no release yet.")
            sequence = newest[0]["sequence"]
        path = f"/app/{app}/release/{sequence}/image-checks"
        deadline = time.monotonic() + timeout
        while True:
            body = client.get(path)
            images = body.get("images", [])
            pending = [i for i in images if str(i.get("status", "")).lower() in {"pending", "running",
                                                                                  "checking"}]
            if not (wait and pending) or time.monotonic() > deadline:
                break
            time.sleep(1)
    emit(settings.output, body, [("IMAGE", "image"), ("STATUS", "status"), ("MESSAGE", "message")],
         images)
    failing = [i for i in images if str(i.get("status", "")).lower() in FAILED]
    if failing:
        raise Refused(f"{len(failing)} image(s) of release {sequence} will fail to pull: "
                      + "; ".join(f"{i.get('image')}: {i.get('message', '')}" for i in failing))
    if pending:
        raise Refused(f"{len(pending)} image(s) still being checked after {timeout} s.")


def main() -> None:
    main_group(prog_name="vendor-portal")
