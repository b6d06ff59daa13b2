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
from rich.text import Text

from . import __version__
from .client import ApiError, Client
from .output import emit, stderr

DEFAULT_URL = "http://127.0.0.1:8000"
MANIFEST_SUFFIXES = {".yaml", ".yml"}


class Refused(click.ClickException):
    """Exit 1 with the API's message (and its per-field errors)."""

    exit_code = 1

    def show(self, file=None) -> None:
        # The message is the server's text (it may quote YAML brackets): never rich markup.
        stderr.print(Text.assemble(("Error:", "bold red"), " ", self.message), highlight=False)


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
    click.echo(f"SEQUENCE: {sequence}")  # on stdout, as Replicated's CLI prints it for scripts
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
    rows = [{**r, "channels": [f"{c.get('name')} ({c.get('releaseLabel')})"
                               for c in r.get("channels") or [] if not c.get("isDemoted")]}
            for r in releases]
    emit(settings.output, releases, [("SEQUENCE", "sequence"), ("CREATED", "created"),
                                     ("ACTIVE_CHANNELS", "channels")], rows)


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
            # The release's promotions name their channel sequences.
            promotions = client.get(f"/app/{app}/release/{release_sequence}")["release"]["channels"]
            live = [p for p in promotions if str(p.get("id")) == str(target["id"])
                    and not p.get("isDemoted")]
            if not live:
                raise Refused(f"release {release_sequence} is not live in {target['name']}.")
            channel_sequence = live[-1]["channelSequence"]
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
@click.option("--show-license-id", is_flag=True,
              help="Show license IDs too (customers' credentials: they would land in CI logs).")
def customer_ls(settings: Settings, show_license_id):
    """List the app's customers (without license IDs unless asked)."""
    customers = []
    with settings.client() as client:
        app = app_id(settings, client)
        page = 0
        while True:
            body = client.get(f"/app/{app}/customers", currentPage=page, pageSize=100,
                              showLicenseId="true" if show_license_id else None)
            batch = body.get("customers", [])
            customers.extend(batch)
            if not batch or len(customers) >= int(body.get("totalCustomers", len(customers))):
                break
            page += 1
    columns = CUSTOMER_COLUMNS + ([("LICENSE_ID", "licenseId")] if show_license_id else [])
    emit(settings.output, customers, columns)


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
@click.option("--name", default="", help="A short name for the registry.")
@click.option("--test-image", default="", help="An image the keys must be able to read.")
@click.option("--skip-validation", is_flag=True, help="Link without checking the keys now.")
@click.option("--wait/--no-wait", default=True, show_default=True,
              help="Wait for the worker's check of the keys.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def registry_add_ecr(settings: Settings, endpoint, access_key_id, secret_access_key_stdin, name,
                     test_image, skip_validation, wait, timeout):
    """Link Amazon ECR (exit 1 when the worker says the keys fail). The secret never goes on the
    command line."""
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
            "provider": "ecr", "endpoint": endpoint, "authType": "password", "slug": name,
            "username": access_key_id, "password": secret, "skipValidation": skip_validation,
            "testImage": test_image,
        })
        if wait:
            body = follow_until_settled(client, body, timeout)
    registry_row = {**body.get("external_registry", {}), "status": body.get("status"),
                    "message": body.get("message")}
    emit(settings.output, body, REGISTRY_COLUMNS + [("MESSAGE", "message")], [registry_row])
    if registry_row["status"] == "failed":
        raise Refused(registry_row["message"] or "the worker could not log in with these keys.")


REGISTRY_COLUMNS = [("PROVIDER", "provider"), ("ENDPOINT", "endpoint"), ("NAME", "slug"),
                    ("USERNAME", "username"), ("STATUS", "status")]


def follow_until_settled(client: Client, body: dict, timeout: float) -> dict:
    """GET the answer's ``pollUrl`` until the answer has none (the worker is done)."""
    deadline = time.monotonic() + timeout
    delay = 0.5
    while body.get("pollUrl"):
        if time.monotonic() > deadline:
            raise Refused(f"the worker has not answered after {timeout} s; "
                          f"see {body['pollUrl']} or run again with a longer --timeout.")
        time.sleep(delay)
        delay = min(delay * 1.5, 3.0)
        body = client.follow(body["pollUrl"])
    return body


@registry.command("ls")
@common
def registry_ls(settings: Settings):
    """List linked registries and their check (never their secrets)."""
    with settings.client() as client:
        registries = client.get("/external_registries").get("external_registries", [])
    emit(settings.output, registries, REGISTRY_COLUMNS)


@registry.command("test")
@common
@click.option("--endpoint", required=True, help="The linked registry's endpoint or name.")
@click.option("--image", default="", help="An image the stored credentials must be able to read.")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the result.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def registry_test(settings: Settings, endpoint, image, wait, timeout):
    """Check a linked registry's credentials now, on the worker (exit 1 when they fail)."""
    with settings.client() as client:
        body = client.put("/external_registry/test", {"endpoint": endpoint, "image": image})
        if wait and body.get("pollUrl"):
            body = follow_until_settled(client, body, timeout)
            body = {"state": body.get("status"), "message": body.get("message")}
    row = {"endpoint": endpoint, "image": image, "status": body.get("state"),
           "message": body.get("message")}
    emit(settings.output, body, [("ENDPOINT", "endpoint"), ("IMAGE", "image"), ("STATUS", "status"),
                                 ("MESSAGE", "message")], [row])
    if row["status"] != "connected":
        raise Refused(row["message"] or f"the registry is {row['status']}.")


@main_group.group()
def mirror():
    """Copy images into a linked registry."""


MIRROR_ACTIVE = {"queued", "running"}


def split_target(target: str, registry: str | None) -> tuple[str, str, str]:
    """(registry, repository, tag) of TARGET: ``host/repo[:tag]``, or ``repo[:tag]`` with --registry."""
    first, _, rest = target.partition("/")
    if registry is None:
        if not rest or not ("." in first or ":" in first or first == "localhost"):
            raise click.BadParameter("give the linked registry's host (123456789012.dkr.ecr."
                                     "us-east-1.amazonaws.com/repo:tag) or --registry.",
                                     param_hint="TARGET")
        registry, target = first, rest
    repository, _, tag = target.rpartition(":") if ":" in target.rsplit("/", 1)[-1] else (target, "", "")
    return registry, repository, tag


@mirror.command("create")
@common
@click.argument("source")
@click.argument("target")
@click.option("--registry", help="The linked registry to copy into, when TARGET has no host.")
@click.option("--platform", "platforms", multiple=True,
              help="Copy only these platforms, e.g. linux/amd64 (repeatable).")
@click.option("--wait", is_flag=True, help="Wait for the copy, with a progress bar.")
@click.option("--timeout", default=1800, show_default=True, help="Seconds to wait.")
def mirror_create(settings: Settings, source, target, registry, platforms, wait, timeout):
    """Copy image SOURCE to TARGET (host/repository:tag of a linked registry); exit 1 when it fails."""
    registry, repository, tag = split_target(target, registry)
    with settings.client() as client:
        body = client.create("/mirror_job", {
            "source": source, "registry": registry, "targetRepository": repository,
            "targetTag": tag, "platforms": ", ".join(platforms)})
        job = body.get("mirror_job", body)
        if wait and job.get("state") in MIRROR_ACTIVE:
            job = _watch_mirror(client, job, timeout)
    emit(settings.output, job, [("ID", "id"), ("SOURCE", "source"), ("TARGET", "target"),
                                ("STATE", "state"), ("DIGEST", "digest"), ("ERROR", "error")])
    if job.get("state") in {"failed", "canceled"}:
        raise Refused(job.get("error") or f"the mirror job was {job['state']}.")


def _watch_mirror(client: Client, job: dict, timeout: float) -> dict:
    """Poll the job, drawing its bytes copied as a progress bar on stderr."""
    deadline = time.monotonic() + timeout
    with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                  TimeElapsedColumn(), console=stderr) as progress:
        task = progress.add_task(f"Mirroring {job.get('source', '')}", total=None)
        while job.get("state") in MIRROR_ACTIVE:
            if time.monotonic() > deadline:
                raise Refused(f"the mirror job is still {job['state']} after {timeout} s; "
                              f"see {job.get('pollUrl')}.")
            time.sleep(1)
            job = client.follow(job["pollUrl"]).get("mirror_job", job)
            progress.update(task, total=job.get("bytesTotal") or None,
                            completed=job.get("bytesDone") or 0,
                            description=f"{job.get('state')} {job.get('source', '')}")
    return job


@main_group.group()
def image():
    """The image check: can customers pull each image of a release?"""


@image.command("check")
@common
@click.option("--release", "sequence", type=int, help="Release sequence (default: the newest).")
@click.option("--wait", is_flag=True, help="Wait until no image is still being checked.")
@click.option("--timeout", default=300, show_default=True, help="Seconds to wait.")
def image_check(settings: Settings, sequence, wait, timeout):
    """Show the image check of a release; exit 1 when customers will fail to pull an image."""
    with settings.client() as client:
        app = app_id(settings, client)
        if sequence is None:
            newest = client.get(f"/app/{app}/releases", currentPage=0, pageSize=1).get("releases")
            if not newest:
                raise Refused("the app has no release yet.")
            sequence = newest[0]["sequence"]
        path = f"/app/{app}/release/{sequence}/image-checks"
        deadline = time.monotonic() + timeout
        body = client.get(path)
        while wait and body.get("pending") and time.monotonic() < deadline:
            time.sleep(1)
            body = client.get(path)
    images = body.get("images", [])
    emit(settings.output, body, [("IMAGE", "image"), ("VERDICT", "label"), ("MESSAGE", "message")],
         images)
    failing = [i for i in images if i.get("fails")]
    if failing:
        raise Refused(f"{len(failing)} image(s) of release {sequence} will fail to pull: "
                      + "; ".join(f"{i['image']}: {i.get('message', '')}" for i in failing))
    if wait and body.get("pending"):
        raise Refused(f"{body['pending']} image(s) still being checked after {timeout} s.")


def main() -> None:
    main_group(prog_name="vendor-portal")
