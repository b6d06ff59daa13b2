"""Hostile and huge YAML texts for the tests: bombs, deep nesting, a large plain CRD bundle."""


def merge_bomb(levels=9, copies=8):
    """Each level merges the one before ``copies`` times: 4·8⁹ ≈ 537 million entries in 500 bytes."""
    lines = ["l0: &l0 {a: 1, b: 2, c: 3, d: 4}"]
    for level in range(1, levels + 1):
        refs = ",".join([f"*l{level - 1}"] * copies)
        lines.append(f"l{level}: &l{level} {{<<: [{refs}]}}")
    return "\n".join(lines) + "\n"


def alias_bomb(levels=9, copies=9):
    """The "billion laughs": each level a list of ``copies`` aliases of the one before."""
    lines = ['a0: &a0 "lol"']
    for level in range(1, levels + 1):
        lines.append(f"a{level}: &a{level} [" + ",".join([f"*a{level - 1}"] * copies) + "]")
    return "\n".join(lines) + "\n"


def deep_nesting(levels=2000):
    return "[" * levels + "]" * levels


def block_nesting(levels):
    """``levels`` nested block mappings, the innermost ``k: v``."""
    return "".join("  " * i + f"k{i}:\n" for i in range(levels - 1)) + "  " * (levels - 1) + "k: v\n"


def _crd(number: int) -> str:
    fields = "".join(
        f"""\
                    field{j}:
                      type: object
                      description: Field {j} of Widget{number}, as a controller's schema says it.
                      properties:
                        value:
                          type: string
                          pattern: "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
                        count:
                          type: integer
                          format: int32
                          minimum: 0
"""
        for j in range(20)
    )
    return f"""\
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets{number}.example.com
spec:
  group: example.com
  names:
    kind: Widget{number}
    listKind: Widget{number}List
    plural: widgets{number}
    singular: widget{number}
  scope: Namespaced
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                settings:
                  type: object
                  properties:
{fields}"""


def crd_bundle(size=5_000_000) -> str:
    """CustomResourceDefinitions, one document each, until the text is ``size`` characters."""
    documents, total = [], 0
    while total < size:
        documents.append(_crd(len(documents)))
        total += len(documents[-1]) + 4
    return "---\n".join(documents)
