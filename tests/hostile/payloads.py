"""Hostile inputs: YAML bombs, deep nesting, odd YAML types, odd endpoint spellings, traversal.

Each builder returns text small enough to pass every size limit, so what stops it must be the
bounded YAML loader, the form's validation or the server's header limits.
"""

from __future__ import annotations

DEPTH_MESSAGE = "nested more than 100 levels deep"
NODES_MESSAGE = "nodes (aliases and merge keys counted as copies)"


def merge_bomb(levels: int = 8, copies: int = 8, indent: str = "") -> str:
    """Merge keys nested ``levels`` deep: flattening copies each level's pairs ``copies`` times."""
    lines = [f"{indent}a0: &a0 {{k: v}}"]
    for level in range(1, levels + 1):
        aliases = ", ".join([f"*a{level - 1}"] * copies)
        lines.append(f"{indent}a{level}: &a{level} {{<<: [{aliases}]}}")
    return "\n".join(lines) + "\n"


def alias_bomb(levels: int = 9, copies: int = 9, indent: str = "") -> str:
    """The "billion laughs": each level lists the one before ``copies`` times by alias."""
    lines = [f"{indent}l0: &l0 [" + ", ".join(["lol"] * copies) + "]"]
    for level in range(1, levels + 1):
        lines.append(f"{indent}l{level}: &l{level} [" + ", ".join([f"*l{level - 1}"] * copies) + "]")
    return "\n".join(lines) + "\n"


def deep_flow(depth: int = 2000) -> str:
    return "[" * depth + "]" * depth


def deep_block(depth: int = 2000) -> str:
    """A block sequence nested ``depth`` deep in one line ("- - - x")."""
    return "- " * depth + "x"


def k8s_document(body: str) -> str:
    """``body`` (top-level keys) inside a ConfigMap-like document of a release file."""
    return "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: hostile\n" + body


# The YAML every YAML reader of the portal gets: (id, text, message the refusal must carry).
RELEASE_YAML = [
    ("merge-bomb-7", k8s_document("data:\n" + merge_bomb(7, indent="  ")), NODES_MESSAGE),
    ("merge-bomb-9", k8s_document("data:\n" + merge_bomb(9, indent="  ")), NODES_MESSAGE),
    ("alias-bomb", k8s_document("data:\n" + alias_bomb(indent="  ")), NODES_MESSAGE),
    ("deep-flow", k8s_document("data: " + deep_flow() + "\n"), DEPTH_MESSAGE),
    ("deep-block", k8s_document("data:\n  " + deep_block() + "\n"), DEPTH_MESSAGE),
]


def license_text(license_id: str, spec_extra: str) -> str:
    """A license file for ``license_id`` whose spec also holds ``spec_extra`` (indented lines)."""
    return (
        "apiVersion: kots.io/v1beta1\nkind: License\nmetadata:\n  name: hostile\n"
        f"spec:\n  licenseID: {license_id}\n  appSlug: mysampleecrapp\n  signature: AAAA\n"
        + spec_extra
    )


def license_yaml_cases(license_id: str) -> list[tuple[str, str, str | None]]:
    """(id, license file text, message or None) for the customer's license upload."""
    return [
        ("merge-bomb-7", license_text(license_id, "  bomb:\n" + merge_bomb(7, indent="    ")), NODES_MESSAGE),
        ("merge-bomb-9", license_text(license_id, "  bomb:\n" + merge_bomb(9, indent="    ")), NODES_MESSAGE),
        ("alias-bomb", license_text(license_id, "  bomb:\n" + alias_bomb(indent="    ")), NODES_MESSAGE),
        ("deep-flow", license_text(license_id, "  deep: " + deep_flow() + "\n"), DEPTH_MESSAGE),
        ("deep-block", license_text(license_id, "  deep:\n    " + deep_block() + "\n"), DEPTH_MESSAGE),
        # What JSON cannot represent, inside the signed spec (its canonical JSON is signed).
        ("date", license_text(license_id, "  issued: 2024-01-31\n"), None),
        ("set", license_text(license_id, "  tags: !!set {a: null, b: null}\n"), None),
        ("binary", license_text(license_id, "  blob: !!binary aGVsbG8=\n"), None),
        ("integer-key", license_text(license_id, "  entitlements:\n    1: one\n"), None),
        ("int-beyond-int64", license_text(license_id, "  seats: 123456789012345678901234567890\n"), None),
    ]


# Endpoints the registry form must refuse: the HTTP client cannot use them.
ODD_ENDPOINTS = [
    "0177.0.0.1:5302",
    "256.1.1.1",
    "999.999.999.999",
    "0x7f.1",
    "[::1",
    "registry.example.com:99999",
    "user@registry.example.com",
    "registry.example.com/path",
    "registry example.com",
    "xn--.example",
    "xn--zz--.example",
    "exa\u200bmple.com",
    "-registry.example.com",
]

STATIC_TRAVERSALS = [
    "/static/../../var/encryption_keys",
    "/static/%2e%2e/%2e%2e/var/encryption_keys",
    "/static/..%2f..%2fvar/encryption_keys",
    "/static/%252e%252e/%252e%252e/var/encryption_keys",
    "/static/..\\..\\var\\encryption_keys",
    "/static/..%5c..%5cvar%5cencryption_keys",
    "/static/%2e%2e%2f%2e%2e%2fvar%2fencryption_keys",
]

INVALID_UTF8 = b"\xff\xfe\xc3\x28\xed\xa0\x80"
