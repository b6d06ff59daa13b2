"""The rendered downstream a customer receives for a release ("View Files").

For one customer and one release the tree is::

    upstream/<file>                        the release's files as the vendor wrote them
    base/<file> + base/kustomization.yaml  its Kubernetes YAML, untouched
    overlays/midstream/kustomization.yaml  resources ../../base + secret.yaml, images:, patches:
    overlays/midstream/secret.yaml         the pull secret, one per namespace the workloads use
    overlays/midstream/pullsecrets.yaml    strategic-merge patches adding imagePullSecrets

Image rewriting follows KOTS (``pkg/base/rewrite.go``, ``pkg/docker/registry/images.go``): a
proxied image becomes ``<proxy host>/proxy/<app slug>/<image as written, without tag or
digest>``; an image on a registry with a port (a ``:`` is not allowed in a reference path) or
on a dot-less host such as ``localhost`` is proxied under that registry's Name instead; images
already on the proxy host are left alone. Which images are proxied is the caller's decision
(``is_proxied``): by default the private-image check's verdicts (image_check.selectors.verdict_predicate).

Doing better than KOTS on tags. Kustomize's ``images:`` transformer matches entries by name
only, so KOTS's one entry per image collapses ``nginx:1.25`` in one workload and
``nginx:1.27`` in another onto one tag. Here a repository whose proxied uses all pin one
tag or digest gets the KOTS-style ``images:`` entry (with the Docker Hub alias spellings, as
admins expect to read it), and a repository used with several tags or digests gets no
``images:`` entry: each of its containers gets a JSON6902 patch targeting its workload
(``test`` the image as written, then ``replace`` it with the full proxied reference). We chose
patches over rewriting ``base/``: ``base/`` stays byte-for-byte the vendor's YAML, so a diff
against ``upstream/`` shows nothing surprising, every change lives in the midstream overlay,
and the ``test`` op makes kustomize fail loudly rather than rewrite the wrong container if the
base ever drifts. Kustomize runs patches before the images transformer, and the patched name
(on the proxy host) matches no ``images:`` entry, so the two never fight.

Doing better than KOTS on moved tags. ``pins`` maps an image's normalised reference (the
private-image check's key) to the digest its release was promoted with. A pinned image is
pulled as ``name:tag@digest`` in every rewrite path: its ``images:`` entries (the alias
spellings too) carry ``newTag`` and ``digest``, which kustomize v5 renders as
``name:tag@digest``; its patches replace with ``<proxied name>:<tag>@<digest>``. An image
that is not proxied (public, or already on the proxy host) keeps its name and is pinned
the same way (an ``images:`` entry without ``newName``, or a patch when its repository is
also used otherwise). A tag moved upstream after promotion then changes nothing a customer
installs: the digest decides what a runtime pulls, the tag only says what it was. An image
written with a digest keeps just that digest, as today; an image without a pin (not
resolved yet) is rewritten as today. ``pinned_text`` does the same for the release's files
as written (what KOTS downloads and renders itself), editing only the image scalars.
"""

from __future__ import annotations

import base64
import gzip
import io
import json
import posixpath
import tarfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

import yaml

from registries.reference import DOCKER_HUB, InvalidReference, Reference, parse

from .manifests import Document, ImageUse, Workload, image_spans, image_uses, parse_documents

# Installer and troubleshooting kinds are read by KOTS itself, never applied to the cluster.
# So is a vendor's own Kustomization: base/kustomization.yaml is ours.
NON_KUBERNETES_GROUPS = ("kots.io", "troubleshoot.sh", "troubleshoot.replicated.com", "kustomize.config.k8s.io")
RESERVED_BASE_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
YAML_SUFFIXES = (".yaml", ".yml")


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as ``|`` literals, lists indented as kubectl writes them."""

    def increase_indent(self, flow=False, indentless=False):
        return super().increase_indent(flow, False)


def _str_representer(dumper, value):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(data) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)


def dump_all_yaml(documents: Iterable) -> str:
    return yaml.dump_all(
        list(documents), Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True
    )


def is_kubernetes_document(document) -> bool:
    if not isinstance(document, dict):
        return False
    api_version, kind = document.get("apiVersion"), document.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str) or not api_version or not kind:
        return False
    group = api_version.rpartition("/")[0]
    return not any(group == g or group.endswith("." + g) for g in NON_KUBERNETES_GROUPS)


# --- names --------------------------------------------------------------------------------


def strip_tag_and_digest(written: str) -> str:
    """``reg:5000/app:1.0@sha256:…`` → ``reg:5000/app`` (the image as written, name only)."""
    name = written.split("@", 1)[0]
    colon = name.rfind(":")
    if colon > name.rfind("/"):
        name = name[:colon]
    return name


def docker_hub_aliases(ref: Reference) -> list[str]:
    """The spellings kustomize must match literally for a Docker Hub image (KOTS imageutil)."""
    if ref.domain != DOCKER_HUB:
        return []
    paths = [ref.path]
    if ref.path.startswith("library/") and ref.path.count("/") == 1:
        paths.insert(0, ref.path.removeprefix("library/"))
    names = []
    for domain in ("", "docker.io/", "index.docker.io/"):
        for path in paths:
            names.append(domain + path)
    return [n for n in names if n != ref.name()]


def _needs_registry_name(domain: str) -> bool:
    """A port cannot be in a reference path; a dot-less host would be read as Docker Hub."""
    return ":" in domain or ("." not in domain and domain != DOCKER_HUB)


def proxied_name(written: str, ref: Reference, *, proxy_host: str, app_slug: str,
                 registry_names: Mapping[str, str]) -> str | None:
    """The proxied repository name, or None when the image cannot go through the proxy."""
    written_name = strip_tag_and_digest(written)
    if _needs_registry_name(ref.domain) and written_name.startswith(ref.domain + "/"):
        registry_name = registry_names.get(ref.domain)
        if not registry_name:
            return None
        return f"{proxy_host}/proxy/{app_slug}/{registry_name}/{ref.path}"
    return f"{proxy_host}/proxy/{app_slug}/{written_name}"


def pin(ref: Reference, digest: str = "") -> str:
    """What kustomize will pull: the digest when one is written (kots PR 3038), else the tag,
    with the promoted ``digest`` when the image is pinned."""
    if ref.digest:
        return f"@{ref.digest}"
    return f":{ref.tag or 'latest'}" + (f"@{digest}" if digest else "")


def pinned_digest(ref: Reference, pins: Mapping[str, str]) -> str:
    """The digest ``ref`` was promoted with ("" when written with one, or not pinned)."""
    return "" if ref.digest else pins.get(str(ref), "")


def pinned_text(text: str, pins: Mapping[str, str]) -> str:
    """``text`` with each pinned container image written as ``name:tag@digest``: only the
    image scalar changes (its quotes, anchor and every other byte stay). An image written
    with a digest, not pinned, or not written as one literal line stays as written."""
    if not pins:
        return text
    pieces, last, done = [], 0, set()
    for start, end, image in image_spans(text):
        if (start, end) in done:  # an alias: the anchored scalar is edited once
            continue
        done.add((start, end))
        try:
            ref = parse(image)
        except InvalidReference:
            continue
        digest = pinned_digest(ref, pins)
        # The value as written is the last occurrence in the node's span: an anchor or a tag
        # comes before it, quotes around it; escapes or line folding make it absent.
        at = text.rfind(image, start, end)
        if not digest or at < 0:
            continue
        pieces += [text[last:at], strip_tag_and_digest(image) + pin(ref, digest)]
        last = at + len(image)
    return "".join(pieces) + text[last:]


def proxy_predicate(*, linked_hosts: Iterable[str], proxy_public_images: bool) -> Callable[[Reference], bool]:
    """Proxied = on a linked registry, or every image with "Proxy public images too" (the
    rule without verdicts; the downstream uses the private-image check's verdicts where it has them)."""
    hosts = set(linked_hosts)
    # Registry endpoints are canonical (registries/reference.py): Docker Hub is "docker.io".
    return lambda ref: proxy_public_images or ref.domain in hosts


# --- rendering ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageRewrite:
    """One image as written and what the customer's cluster pulls instead ("" = unchanged)."""

    written: str
    normalised: str
    proxied: str
    how: str  # "images" (kustomize images: entry), "patch" (JSON6902), "" (left alone)
    note: str = ""
    pinned: str = ""  # what the cluster pulls when the image is pinned by digest: name:tag@digest


@dataclass
class Downstream:
    files: dict[str, str] = field(default_factory=dict)
    images: list[ImageRewrite] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def proxied_images(self) -> list[str]:
        return sorted({i.proxied for i in self.images if i.proxied})

    def tree(self, top: str) -> list[tuple[str, str]]:
        prefix = top.rstrip("/") + "/"
        return [(path, text) for path, text in self.files.items() if path.startswith(prefix)]

    def tar_gz(self, *, root: str = "") -> bytes:
        return tar_gz(self.files, root=root)


def safe_relative_path(name: str) -> str | None:
    """A release file name usable inside the tree, or None (absolute, ``..``, empty)."""
    normalised = posixpath.normpath(name.replace("\\", "/"))
    if not name or normalised.startswith(("/", "../")) or normalised in (".", ".."):
        return None
    return normalised


def pull_secret_name(app_slug: str) -> str:
    return f"{app_slug}-registry"


def dockerconfigjson(*, proxy_host: str, license_id: str) -> str:
    auth = base64.b64encode(f"{license_id}:{license_id}".encode()).decode()
    return json.dumps({"auths": {proxy_host: {"auth": auth}}}, separators=(",", ":"))


def _read(files: Iterable[tuple[str, str]], warnings: list[str]
          ) -> Iterator[tuple[str, str, list[Document], list[Document]]]:
    """(path, text, documents, the Kubernetes ones) of every file with a usable name; only
    YAML files that may go into base/ have documents. Why a file is left out goes to ``warnings``."""
    for name, text in files:
        path = safe_relative_path(name)
        if path is None:
            warnings.append(f"{name!r}: not a relative file name, left out")
            continue
        if not path.lower().endswith(YAML_SUFFIXES):
            yield path, text, [], []
            continue
        if path in RESERVED_BASE_NAMES:
            warnings.append(f"{path}: the name of base/'s own kustomization file, left out of base/")
            yield path, text, [], []
            continue
        try:
            documents = list(parse_documents(text))
        except yaml.YAMLError:
            warnings.append(f"{path}: not valid YAML, left out of base/")
            yield path, text, [], []
            continue
        yield path, text, documents, [d for d in documents if is_kubernetes_document(d.data)]


def render_downstream(
    *,
    files: Iterable[tuple[str, str]],
    app_slug: str,
    license_id: str,
    proxy_host: str,
    is_proxied: Callable[[Reference], bool],
    registry_names: Mapping[str, str] | None = None,
    pins: Mapping[str, str] | None = None,
) -> Downstream:
    """Render upstream/, base/ and overlays/midstream/ for the release ``files`` [(name, text)];
    ``pins`` {normalised reference: promoted digest}."""
    registry_names = dict(registry_names or {})
    out = Downstream()
    base_files: list[str] = []
    uses: list[ImageUse] = []
    workloads: dict[Workload, None] = {}

    for path, text, documents, kept in _read(files, out.warnings):
        out.files[f"upstream/{path}"] = text
        if not kept:
            continue
        # As written when every document is Kubernetes YAML; else only the Kubernetes documents.
        out.files[f"base/{path}"] = text if len(kept) == len(documents) else dump_all_yaml(d.data for d in kept)
        base_files.append(path)
        for document in kept:
            for use in image_uses(path, document):
                workloads[use.workload] = None
                uses.append(use)

    out.files["base/kustomization.yaml"] = dump_yaml({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": base_files,
    })

    images, json_patches = _rewrite_images(
        uses, out, app_slug=app_slug, proxy_host=proxy_host, is_proxied=is_proxied,
        registry_names=registry_names, pins=pins or {},
    )

    secret_name = pull_secret_name(app_slug)
    namespaces = sorted({w.namespace for w in workloads}, key=lambda n: (n is not None, n or ""))
    secrets = []
    for namespace in namespaces or [None]:
        metadata = {"name": secret_name}
        if namespace:
            metadata["namespace"] = namespace
        secrets.append({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": "kubernetes.io/dockerconfigjson",
            "data": {
                ".dockerconfigjson": base64.b64encode(
                    dockerconfigjson(proxy_host=proxy_host, license_id=license_id).encode()
                ).decode()
            },
        })
    out.files["overlays/midstream/secret.yaml"] = dump_all_yaml(secrets)
    out.files["overlays/midstream/pullsecrets.yaml"] = dump_all_yaml(
        _pull_secret_patch(w, secret_name) for w in workloads
    ) if workloads else ""

    kustomization: dict = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": ["../../base", "secret.yaml"],
    }
    if images:
        kustomization["images"] = images
    patches: list[dict] = [{"path": "pullsecrets.yaml"}] if workloads else []
    patches.extend(json_patches)
    if patches:
        kustomization["patches"] = patches
    midstream = {"overlays/midstream/kustomization.yaml": dump_yaml(kustomization)}
    midstream["overlays/midstream/secret.yaml"] = out.files.pop("overlays/midstream/secret.yaml")
    midstream["overlays/midstream/pullsecrets.yaml"] = out.files.pop("overlays/midstream/pullsecrets.yaml")
    out.files.update(midstream)  # kustomization.yaml first, as a reader expects
    return out


def _proxy_decision(use: ImageUse, *, app_slug, proxy_host, is_proxied, registry_names,
                    warnings: list[str]) -> tuple[Reference, str | None, str]:
    """(reference, proxied name or None, why not proxied) of one image; InvalidReference."""
    ref = parse(use.image)
    note, new_name = "", None
    if ref.domain == proxy_host:
        note = "already on the proxy"
    elif not is_proxied(ref):
        note = "public: pulled directly"
    else:
        new_name = proxied_name(use.image, ref, proxy_host=proxy_host, app_slug=app_slug,
                                registry_names=registry_names)
        if new_name is None:
            note = (f"registry {ref.domain} needs a Name in the portal to be proxied "
                    "(a port cannot be part of an image path)")
            warnings.append(f"{use.image}: {note}")
    return ref, new_name, note


def _rewrite_images(uses: list[ImageUse], out: Downstream, *, app_slug, proxy_host, is_proxied,
                    registry_names, pins: Mapping[str, str]) -> tuple[list[dict], list[dict]]:
    """The ``images:`` entries and the JSON6902 patches; records each image in ``out.images``."""
    # (use, ref, proxied name or None, pinned digest, note) of each use that changes: proxied,
    # or pinned where it is.
    rewritten: list[tuple[ImageUse, Reference, str | None, str, str]] = []
    seen_written: dict[str, ImageRewrite] = {}
    left_alone: set[str] = set()  # repositories some use of which stays as written
    for use in uses:
        try:
            ref, new_name, note = _proxy_decision(
                use, app_slug=app_slug, proxy_host=proxy_host, is_proxied=is_proxied,
                registry_names=registry_names, warnings=out.warnings)
        except InvalidReference as e:
            out.warnings.append(f"{use.file}: {e}; left as written")
            seen_written.setdefault(use.image, ImageRewrite(use.image, "", "", "", str(e)))
            continue
        digest = pinned_digest(ref, pins)
        if new_name is None and not digest:
            left_alone.add(ref.name())
            seen_written.setdefault(use.image, ImageRewrite(use.image, str(ref), "", "", note))
            continue
        rewritten.append((use, ref, new_name, digest, note))

    groups: dict[str, list[tuple[ImageUse, Reference, str | None, str, str]]] = {}
    for member in rewritten:
        groups.setdefault(member[1].name(), []).append(member)
    proxied_names = {new_name for _, _, new_name, _, _ in rewritten if new_name}

    images: list[dict] = []
    patch_ops: dict[Workload, list[dict]] = {}
    for repository, members in groups.items():
        _, ref, new_name, digest, _ = members[0]
        names = [repository, *docker_hub_aliases(ref)]
        # One entry per name can say one thing: every use must pull the same, no use of the
        # repository may stay as written, and a name kept where it is must not be one a
        # patch just wrote (patches run first).
        one_pull = len({(n is None, pin(r, d)) for _, r, n, d, _ in members}) == 1
        if one_pull and repository not in left_alone and (
                new_name is not None or not proxied_names.intersection(names)):
            entry_tail: dict = {"newName": new_name} if new_name else {}
            if ref.digest:
                entry_tail["digest"] = ref.digest
            else:
                entry_tail["newTag"] = ref.tag or "latest"
                if digest:
                    entry_tail["digest"] = digest
            for name in names:
                images.append({"name": name, **entry_tail})
            for use, ref, new_name, digest, note in members:
                seen_written.setdefault(use.image, _rewrite(use, ref, new_name, digest, note, "images"))
            continue
        for use, ref, new_name, digest, note in members:
            target = (new_name or strip_tag_and_digest(use.image)) + pin(ref, digest)
            patch_ops.setdefault(use.workload, []).extend([
                {"op": "test", "path": use.pointer, "value": use.image},
                {"op": "replace", "path": use.pointer, "value": target},
            ])
            seen_written.setdefault(use.image, _rewrite(use, ref, new_name, digest, note, "patch"))

    patches = []
    for workload, ops in patch_ops.items():
        group, version = workload.group_version
        target = {"group": group, "version": version, "kind": workload.kind, "name": workload.name}
        if not group:
            del target["group"]
        if workload.namespace:
            target["namespace"] = workload.namespace
        patches.append({"target": target, "patch": dump_yaml(ops)})
    out.images = list(seen_written.values())
    return images, patches


def _rewrite(use: ImageUse, ref: Reference, new_name: str | None, digest: str, note: str,
             how: str) -> ImageRewrite:
    target = (new_name or strip_tag_and_digest(use.image)) + pin(ref, digest)
    return ImageRewrite(use.image, str(ref), target if new_name else "", how, note,
                        target if digest else "")


def proxied_repositories(
    files: Iterable[tuple[str, str]],
    *,
    app_slug: str,
    proxy_host: str,
    is_proxied: Callable[[Reference], bool],
    registry_names: Mapping[str, str],
) -> dict[str, Reference]:
    """{path after ``/proxy/<slug>/``: upstream repository} of the images ``render_downstream``
    would proxy for ``files``, without rendering: the same files, documents and decisions."""
    prefix = f"{proxy_host}/proxy/{app_slug}/"
    allowed: dict[str, Reference] = {}
    for path, _text, _documents, kept in _read(files, []):
        for document in kept:
            for use in image_uses(path, document):
                try:
                    ref, new_name, _note = _proxy_decision(
                        use, app_slug=app_slug, proxy_host=proxy_host, is_proxied=is_proxied,
                        registry_names=registry_names, warnings=[])
                except InvalidReference:
                    continue
                if new_name is not None:
                    allowed[new_name.removeprefix(prefix)] = Reference(domain=ref.domain, path=ref.path)
    return allowed


def _pull_secret_patch(workload: Workload, secret_name: str) -> dict:
    """A strategic-merge patch: imagePullSecrets merge by name, the vendor's own ones stay."""
    pod_spec: dict = {"imagePullSecrets": [{"name": secret_name}]}
    node = pod_spec
    for key in reversed(workload.spec_path):
        node = {key: node}
    # node is now {"spec": {...}}; the outermost key of every spec path is "spec".
    metadata = {"name": workload.name}
    if workload.namespace:
        metadata["namespace"] = workload.namespace
    return {"apiVersion": workload.api_version, "kind": workload.kind, "metadata": metadata,
            **node}


def tar_gz(files: Mapping[str, str], *, root: str = "", mtime: int | None = None) -> bytes:
    """A gzipped tar of ``files`` {path: text}, under ``root/`` when given (in memory: YAML).

    Names sorted, and every timestamp (the gzip header's too) ``mtime`` when given: the same
    files and ``mtime`` give the same bytes.
    """
    buffer = io.BytesIO()
    mtime = int(time.time()) if mtime is None else mtime
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=mtime) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        for path in sorted(files):
            data = files[path].encode()
            info = tarfile.TarInfo(posixpath.join(root, path) if root else path)
            info.size, info.mode, info.mtime = len(data), 0o644, mtime
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()
