"""Check a release's YAML files and list the images they use. Pure: no Django, no I/O.

``validate_file(name, text)`` returns the problems of one file, each with the 1-based line and
column it points at, so the editor can say exactly what to fix:

- YAML syntax errors (PyYAML's message, with a hint for tabs, which YAML forbids in indentation);
- every document must be a mapping with ``apiVersion``, ``kind`` and ``metadata.name``;
- duplicate keys in a mapping (Kubernetes rejects them; PyYAML silently keeps the last one);
- every container (``containers`` and ``initContainers``) of a workload needs an ``image``.

At most ``MAX_PROBLEMS`` are listed, then one "…and N more problems". YAML is read through
``portal.yamlsafe``: a file nested too deeply or expanding too far is one problem saying so.

``images_in(files)`` lists the container images of every workload in ``[(name, text), ...]``,
in file order; files with syntax errors contribute nothing. Multi-document files (``---``) are
read document by document. The private-image check reuses this. It is the one workload walker:
``image_uses(file, document)`` gives each ``ImageUse`` with its place in the document (the
kustomize renderer patches it there, and the proxy's allow-list is read the same way).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from portal import yamlsafe

# Workload kinds and the path from the document to their pod spec.
POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "ReplicaSet": ("spec", "template", "spec"),
    "ReplicationController": ("spec", "template", "spec"),
    "Job": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}
CONTAINER_LISTS = ("initContainers", "containers")

# A relative path of safe parts ending in .yaml/.yml: `deployment.yaml`, `manifests/db.yml`.
FILE_NAME_RE = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._-]*/)*[A-Za-z0-9][A-Za-z0-9._-]*\.ya?ml$")
MAX_FILE_NAME = 255
# Problems listed per file: enough to work through, few enough that the page stays small.
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    """What is wrong, and where (1-based line and column; None when it is the whole file)."""

    line: int | None
    column: int | None
    message: str
    hidden: int = 0  # the closing "…and N more problems" entry stands for N problems not listed

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"Line {self.line}: {self.message}"
        return f"Line {self.line}, column {self.column}: {self.message}"


@dataclass(frozen=True)
class Workload:
    """A document with a pod spec: where it is and how to patch it."""

    file: str
    api_version: str
    kind: str
    name: str
    namespace: str | None
    spec_path: tuple[str, ...]

    @property
    def group_version(self) -> tuple[str, str]:
        group, _, version = self.api_version.rpartition("/")
        return group, version


@dataclass(frozen=True)
class ImageUse:
    """One container's image: in ``file``, workload ``kind``/``name``, container ``container``.

    Compared by those and the image; the rest says where the image sits in its document
    (``pointer``), for the rendered downstream's patches."""

    file: str
    kind: str
    name: str
    container: str
    image: str
    api_version: str = field(default="", compare=False)
    namespace: str | None = field(default=None, compare=False)
    spec_path: tuple[str, ...] = field(default=(), compare=False)
    container_list: str = field(default="containers", compare=False)
    index: int = field(default=0, compare=False)

    @property
    def workload(self) -> Workload:
        return Workload(self.file, self.api_version, self.kind, self.name, self.namespace, self.spec_path)

    @property
    def pointer(self) -> str:
        """The JSON pointer of the image in its document."""
        return "/" + "/".join((*self.spec_path, self.container_list, str(self.index), "image"))


def file_name_error(name: str) -> str | None:
    """Why ``name`` cannot be a release file name, or None when it can."""
    if not name:
        return "Enter a file name, such as deployment.yaml."
    if len(name) > MAX_FILE_NAME:
        return f"Use at most {MAX_FILE_NAME} characters."
    if not FILE_NAME_RE.match(name) or ".." in name.split("/"):
        return (
            "Use a relative name ending in .yaml or .yml, made of letters, digits, dots, "
            "hyphens and underscores, with / between folders (for example deployment.yaml)."
        )
    return None


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Document:
    """One YAML document: its node tree (for positions) and its Python value."""

    node: Node
    data: object


def _parse(text: str) -> tuple[Document, ...]:
    return tuple(Document(node, data) for node, data in yamlsafe.load_all_with_nodes(text) if data is not None)


_parse_remembered = functools.lru_cache(maxsize=8)(_parse)
_REMEMBER_BELOW = 256 * 1024  # characters: a node tree takes tens of times its text in memory


def parse_documents(text: str) -> tuple[Document, ...]:
    """Each non-empty document with its node tree (for positions) and its Python value;
    yaml.YAMLError when the text is not valid YAML.

    Small texts are remembered: one request checks a file and lists its images (the editor's
    live check, the release page), and parsing dominates both. Callers only read the result."""
    return _parse_remembered(text) if len(text) < _REMEMBER_BELOW else _parse(text)


def _syntax_problem(error: yaml.YAMLError) -> Problem:
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    message = f"{problem} ({context})" if context else problem
    message = message[:1].upper() + message[1:]
    if "'\\t'" in message:
        message += ". YAML does not allow tabs for indentation: use spaces."
    if mark is None:
        return Problem(None, None, f"Invalid YAML: {message}")
    return Problem(mark.line + 1, mark.column + 1, message)


def _at(node: Node, message: str) -> Problem:
    return Problem(node.start_mark.line + 1, node.start_mark.column + 1, message)


def _mapping(node: Node | None) -> dict[str, Node]:
    """A mapping node's string keys → value nodes ({} for anything else)."""
    if not isinstance(node, MappingNode):
        return {}
    return {k.value: v for k, v in node.value if isinstance(k, ScalarNode)}


def _scalar(node: Node | None) -> str:
    """A scalar node's text, or "" (null, ``~``, or not a scalar)."""
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null":
        return ""
    return str(node.value)


def _duplicate_keys(node: Node, seen: set[int] | None = None) -> Iterator[Problem]:
    seen = set() if seen is None else seen
    if id(node) in seen:  # aliases can point back at a node already checked
        return
    seen.add(id(node))
    if isinstance(node, MappingNode):
        # Only the keys written here: a key that overrides one brought in by a merge key
        # (``<<: *base`` then ``replicas: 3``) is what merging is for, not a duplicate.
        keys: set[str] = set()
        for key, value in yamlsafe.written_pairs(node):
            if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                if key.value in keys:
                    yield _at(key, f"Duplicate key “{key.value}”: remove one of them.")
                keys.add(key.value)
            yield from _duplicate_keys(value, seen)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            yield from _duplicate_keys(item, seen)


def _pod_spec(fields: dict[str, Node], path: tuple[str, ...] | None) -> Node | None:
    if path is None:
        return None
    node: Node | None = None
    current = fields
    for key in path:
        node = current.get(key)
        if not isinstance(node, MappingNode):
            return None
        current = _mapping(node)
    return node


def _containers(document: Node, file: str = "") -> Iterator[tuple[Workload, str, int, Node, Node | None]]:
    """The workload walker: (workload, container list key, index, container node, image node)
    of every container of a workload document."""
    fields = _mapping(document)
    kind = _scalar(fields.get("kind"))
    path = POD_SPEC_PATHS.get(kind)
    pod_spec = _pod_spec(fields, path)
    if pod_spec is None:
        return
    metadata = _mapping(fields.get("metadata"))
    workload = Workload(
        file=file, api_version=_scalar(fields.get("apiVersion")), kind=kind,
        name=_scalar(metadata.get("name")), namespace=_scalar(metadata.get("namespace")) or None,
        spec_path=path,
    )
    spec = _mapping(pod_spec)
    for list_key in CONTAINER_LISTS:
        containers = spec.get(list_key)
        if not isinstance(containers, SequenceNode):
            continue
        for index, container in enumerate(containers.value):
            yield workload, list_key, index, container, _mapping(container).get("image")


def image_uses(file: str, document: Document) -> Iterator[ImageUse]:
    """Every container image of one document, in order (none when it is not a workload)."""
    for workload, list_key, index, container, image in _containers(document.node, file):
        image_text = _scalar(image).strip()
        if image_text:
            yield ImageUse(
                file, workload.kind, workload.name, _scalar(_mapping(container).get("name")), image_text,
                api_version=workload.api_version, namespace=workload.namespace,
                spec_path=workload.spec_path, container_list=list_key, index=index,
            )


# --- the two entry points -----------------------------------------------------------------


def validate_file(name: str, text: str) -> list[Problem]:
    """The problems of release file ``name`` with content ``text`` ([] when it is fine)."""
    try:
        documents = list(parse_documents(text))
    except yaml.YAMLError as error:
        return [_syntax_problem(error)]
    if not documents:
        return [Problem(None, None, "The file is empty: add at least one Kubernetes document.")]
    problems: list[Problem] = []
    for number, document in enumerate(documents, start=1):
        where = f"Document {number}" if len(documents) > 1 else "The document"
        node = document.node
        problems.extend(_duplicate_keys(node))
        if not isinstance(node, MappingNode):
            problems.append(_at(node, f"{where} must be a mapping (key: value), such as a Kubernetes object."))
            continue
        fields = _mapping(node)
        for key in ("apiVersion", "kind"):
            if not _scalar(fields.get(key)):
                problems.append(_at(fields.get(key, node), f"{where} needs “{key}”."))
        metadata = fields.get("metadata")
        if not isinstance(metadata, MappingNode):
            problems.append(_at(metadata or node, f"{where} needs “metadata” with a “name”."))
        elif not _scalar(_mapping(metadata).get("name")):
            problems.append(_at(metadata, f"{where} needs “metadata.name”."))
        for _workload, list_key, _index, container, image in _containers(node):
            if not isinstance(container, MappingNode):
                problems.append(_at(container, f"Each entry of “{list_key}” must be a mapping with a name and an image."))
                continue
            label = _scalar(_mapping(container).get("name"))
            label = f"Container “{label}”" if label else f"A container in “{list_key}”"
            if not _scalar(image):
                problems.append(_at(image or container, f"{label} needs an “image”."))
    problems.sort(key=lambda p: (p.line or 0, p.column or 0))
    if len(problems) > MAX_PROBLEMS:
        rest = len(problems) - MAX_PROBLEMS
        more = Problem(None, None, f"…and {rest:,} more problem{'s' if rest > 1 else ''}.", hidden=rest)
        problems = [*problems[:MAX_PROBLEMS], more]
    return problems


def problem_count(problems: Iterable[Problem]) -> int:
    """How many problems ``validate_file`` found, the ones it did not list included."""
    return sum(p.hidden or 1 for p in problems)


def images_in(files: Iterable) -> list[ImageUse]:
    """Every container image in ``files`` (``(name, text)`` pairs or objects with ``name`` and
    ``content``), in order. Files with YAML syntax errors are skipped."""
    uses: list[ImageUse] = []
    for item in files:
        file, text = (item.name, item.content) if hasattr(item, "content") else item
        try:
            documents = list(parse_documents(text))
        except yaml.YAMLError:
            continue
        for document in documents:
            uses.extend(image_uses(file, document))
    return uses


def unique_images(uses: Iterable[ImageUse]) -> list[str]:
    """The distinct images of ``uses``, in first-use order."""
    return list(dict.fromkeys(use.image for use in uses))


def image_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, image)`` of every container image scalar in ``text``: ``text[start:end]``
    is the scalar as written (quotes included), so it can be replaced without touching the rest.
    [] when the file has YAML syntax errors."""
    try:
        documents = list(parse_documents(text))
    except yaml.YAMLError:
        return []
    spans = []
    for document in documents:
        for _workload, _list_key, _index, _container, image in _containers(document.node):
            if isinstance(image, ScalarNode) and _scalar(image).strip():
                spans.append((image.start_mark.index, image.end_mark.index, _scalar(image).strip()))
    return spans
