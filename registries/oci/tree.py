"""The tree under a manifest: an index's child manifests, and each image manifest's config and
layers, as ``[{"digest", "mediaType", "size", "kind"}]`` nodes (kind ``index``, ``manifest``,
``config`` or ``layer``), the top first, each digest once.

This is what a digest pin covers: a client that pulls the pinned manifest fetches exactly these
(the child manifests of the platforms it wants, then their config and layers).
"""

from __future__ import annotations

from ..errors import RegistryError
from .media import Manifest, image_manifest

# A multi-platform index has a handful of children; a bound so a hostile index costs little.
MAX_CHILDREN = 128
MAX_NODES = 10_000

Node = dict  # {"digest": str, "mediaType": str, "size": int, "kind": str}


def _node(desc: dict, kind: str) -> Node | None:
    digest = desc.get("digest") if isinstance(desc, dict) else None
    if not isinstance(digest, str) or not digest.startswith("sha256:"):
        return None
    size = desc.get("size")
    return {"digest": digest, "mediaType": str(desc.get("mediaType") or ""),
            "size": size if isinstance(size, int) and not isinstance(size, bool) else 0,
            "kind": kind}


def top_node(manifest: Manifest) -> Node:
    return {"digest": manifest.digest, "mediaType": manifest.media_type, "size": manifest.size,
            "kind": "index" if manifest.is_index else "manifest"}


def child_descriptors(manifest: Manifest) -> list[Node]:
    """The manifests an index lists (nothing for an image manifest)."""
    if not manifest.is_index:
        return []
    entries = manifest.data.get("manifests")
    nodes = [_node(e, "manifest") for e in entries] if isinstance(entries, list) else []
    return [n for n in nodes if n is not None][:MAX_CHILDREN]


def blob_nodes(manifest: Manifest) -> list[Node]:
    """An image manifest's config and layers (nothing for an index)."""
    if manifest.is_index:
        return []
    body = manifest.data
    nodes = [_node(body.get("config"), "config")]
    layers = body.get("layers")
    if isinstance(layers, list):
        nodes.extend(_node(layer, "layer") for layer in layers)
    return [n for n in nodes if n is not None]


def _add(nodes: list[Node], seen: set[str], new: list[Node]) -> None:
    for node in new:
        if node["digest"] not in seen and len(nodes) < MAX_NODES:
            seen.add(node["digest"])
            nodes.append(node)


def manifest_tree(client, repository: str, reference: str) -> list[Node]:
    """Every manifest and blob under ``repository``:``reference`` (a tag or digest), the top
    manifest first; ``RegistryError`` as ``client.get_manifest`` raises it. One GET for an
    image manifest, one more per child of an index."""
    image = f"{repository}:{reference}"
    top = image_manifest(client.get_manifest(repository, reference), image=image)
    nodes: list[Node] = []
    seen: set[str] = set()
    _add(nodes, seen, [top_node(top)])
    if top.is_index:
        for child_desc in child_descriptors(top):
            child = image_manifest(client.get_manifest(repository, child_desc["digest"]),
                                   image=f"{repository}@{child_desc['digest']}")
            if child.is_index:
                raise RegistryError(f"{image}: an index inside an index is not supported.",
                                    permanent=True, code="bad_manifest")
            _add(nodes, seen, [{**child_desc, "mediaType": child.media_type,
                                "size": child.size}])
            _add(nodes, seen, blob_nodes(child))
    else:
        _add(nodes, seen, blob_nodes(top))
    return nodes
