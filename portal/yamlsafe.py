"""The one way the portal reads YAML: PyYAML's safe loader, bounded. Pure: no Django.

YAML lets a small file describe a huge value. An anchor (``&a``) can be repeated by aliases
(``*a``) and merged into mappings (``<<: [*a, *a]``); nested a few levels, 500 bytes describe
millions of entries. PyYAML keeps an alias as a shared reference, so composing stays cheap and
counting aliases is not enough: the blow-up comes later, whenever something walks the value
(merge flattening, canonical JSON, the editor's duplicate-key check). Deep nesting
(``[[[[…``) exhausts Python's recursion instead.

So, as go-yaml v3 does with its alias ratio, the composer counts nodes as if every alias and
every merged mapping were written out in full, before anything is constructed, and refuses:

- past ``MAX_NODES`` expanded nodes for the whole text: "expands to more than 1,000,000
  nodes (aliases and merge keys counted as copies)";
- past ``MAX_MERGED_NODES`` nodes copied in by merge keys: merging is the costly kind of alias
  (constructing flattens each merge into a real copy, where a plain alias stays one shared
  object), so it has a budget of its own, ten times smaller: "expands to more than 100,000
  merged nodes"; plain Kubernetes YAML merges nothing, hand-written files with
  anchors merge a few hundred nodes;
- past ``MAX_DEPTH`` nested collections: "nested more than 100 levels deep", long before
  Python's recursion limit (composing takes three frames a level);
- an alias inside the node it names (a recursive value, which no JSON or Kubernetes object is).

The budget: a plain Kubernetes YAML file costs 10-30 bytes per node (a 5 MB bundle of
CustomResourceDefinitions has about 260,000), so 1,000,000 accepts any plain file the editor
or a license upload can carry, while work on a file full of aliases stays bounded by what
writing it out would cost: well under a second to construct at the limit.

Errors are ``yaml.YAMLError`` subclasses with a mark (line, column). A constructor's own
failure (``!!int foo``, the date ``2024-13-01``) becomes a ``ConstructorError`` at its node
instead of escaping as ``ValueError``.

Speed: events come from libyaml when PyYAML has it (composing a 5 MB file in about 0.6 s
instead of 6 s); the composer and constructor stay PyYAML's Python ones, so the counting
above applies. When libyaml refuses a text, the pure-Python reader reads it again and has the
final word, so syntax messages and their positions are PyYAML's, as the editor always showed.
"""

from __future__ import annotations

from collections.abc import Callable

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.events import AliasEvent, CollectionStartEvent
from yaml.nodes import MappingNode, Node, ScalarNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import Resolver
from yaml.scanner import Scanner

MAX_NODES = 1_000_000
MAX_MERGED_NODES = 100_000
MAX_DEPTH = 100
MERGE_TAG = "tag:yaml.org,2002:merge"

try:
    from yaml._yaml import CParser
except ImportError:  # PyYAML built without libyaml
    CParser = None


class YAMLLimitError(yaml.MarkedYAMLError):
    """The text is too deeply nested or expands too far to be read safely."""


def _depth_error(mark=None) -> YAMLLimitError:
    return YAMLLimitError(
        problem=f"this YAML is nested more than {MAX_DEPTH} levels deep: flatten it "
                "(Kubernetes objects need far fewer levels)",
        problem_mark=mark,
    )


class _BoundedComposer(Composer):
    """PyYAML's composer, counting nodes with aliases expanded and collections nested."""

    def __init__(self):
        super().__init__()
        self._total = 0  # nodes so far, for the whole text, aliases counted as copies
        self._max_nodes = MAX_NODES
        self._merging = 0  # > 0 while composing the value of a merge key (<<)
        self._merged = 0  # nodes copied in by merge keys so far
        self._depth = 0
        self._sizes: dict[Node, int] = {}  # expanded size of each finished anchored node

    def compose_document(self):
        node = super().compose_document()
        self._sizes = {}  # anchors do not cross documents
        return node

    def compose_node(self, parent, index):
        # For a mapping's value, ``index`` is its key node: ``<<`` makes the value a merge.
        merging = isinstance(index, ScalarNode) and index.tag == MERGE_TAG
        self._merging += merging
        try:
            return self._compose_counted(parent, index)
        finally:
            self._merging -= merging

    def _compose_counted(self, parent, index):
        event = self.peek_event()
        if isinstance(event, AliasEvent):
            target = self.anchors.get(event.anchor)
            if target is not None:  # an undefined alias is the composer's own error
                size = self._sizes.get(target)
                if size is None:
                    raise ComposerError(
                        None, None,
                        f"found the alias *{event.anchor} inside the node it names: a value "
                        "cannot contain itself",
                        event.start_mark,
                    )
                self._count(size, event.start_mark)
                if self._merging:
                    self._count_merged(size, event.start_mark)
            return super().compose_node(parent, index)
        start = self._total
        self._count(1, event.start_mark)
        nested = isinstance(event, CollectionStartEvent)
        if nested:
            self._depth += 1
            if self._depth > MAX_DEPTH:
                raise _depth_error(event.start_mark)
        node = super().compose_node(parent, index)
        if nested:
            self._depth -= 1
        if event.anchor is not None:
            self._sizes[node] = self._total - start
        return node

    def compose_mapping_node(self, anchor):
        node = super().compose_mapping_node(anchor)
        # Constructing flattens merge keys into ``node.value`` (the merged pairs first, the
        # ``<<`` entries removed): remember how many pairs the mapping itself wrote.
        node.written = sum(1 for key, _value in node.value if key.tag != MERGE_TAG)
        return node

    def _count(self, nodes: int, mark) -> None:
        self._total += nodes
        if self._total > self._max_nodes:
            raise YAMLLimitError(
                problem=f"this YAML expands to more than {self._max_nodes:,} nodes (aliases and merge "
                        "keys counted as copies): use fewer aliases and merge keys, or split it",
                problem_mark=mark,
            )


    def _count_merged(self, nodes: int, mark) -> None:
        self._merged += nodes
        if self._merged > MAX_MERGED_NODES:
            raise YAMLLimitError(
                problem=f"this YAML expands to more than {MAX_MERGED_NODES:,} merged nodes "
                        "(aliases and merge keys counted as copies): use fewer merge keys (<<), or "
                        "write the values out",
                problem_mark=mark,
            )


class _Constructor(SafeConstructor):
    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as error:
            value = node.value if isinstance(node, ScalarNode) else ""
            what = f" {value[:40]!r}" if value else ""
            tag = node.tag.rsplit(":", 1)[-1]
            raise ConstructorError(
                None, None, f"cannot read{what} as {tag}: {error}", node.start_mark
            ) from None


class _PyLoader(Reader, Scanner, Parser, _BoundedComposer, _Constructor, Resolver):
    def __init__(self, text: str):
        Reader.__init__(self, text)
        Scanner.__init__(self)
        Parser.__init__(self)
        _BoundedComposer.__init__(self)
        _Constructor.__init__(self)
        Resolver.__init__(self)


if CParser is not None:

    # The composer comes before CParser so that its Python methods, not libyaml's, build nodes.
    class _FastLoader(_BoundedComposer, CParser, _Constructor, Resolver):
        def __init__(self, text: str):
            CParser.__init__(self, text)
            _BoundedComposer.__init__(self)
            _Constructor.__init__(self)
            Resolver.__init__(self)

    _LOADERS: tuple[type, ...] = (_FastLoader, _PyLoader)
else:
    _LOADERS = (_PyLoader,)

# What libyaml refuses is read again by the pure-Python reader (see the module docstring).
_SYNTAX_ERRORS = (yaml.reader.ReaderError, yaml.scanner.ScannerError, yaml.parser.ParserError, UnicodeError)


def _run(text: str, read: Callable, max_nodes: int):
    for loader_class in _LOADERS:
        loader = loader_class(text)
        loader._max_nodes = max_nodes
        try:
            return read(loader)
        except _SYNTAX_ERRORS:
            if loader_class is _PyLoader:
                raise
        except RecursionError:
            # The depth limit comes first; this guards whatever recursion it does not foresee.
            raise _depth_error() from None
        finally:
            loader.dispose()
    raise AssertionError("unreachable: the last loader re-raises")


def _documents_with_nodes(loader) -> list[tuple[Node, object]]:
    documents = []
    while loader.check_node():
        node = loader.get_node()
        if node is not None:
            documents.append((node, loader.construct_document(node)))
    return documents


def load(text: str, *, max_nodes: int = MAX_NODES):
    """The value of a one-document YAML text (None when empty), like ``yaml.safe_load``.

    ``max_nodes`` lowers the budget for texts known to be small (a license has a few dozen
    nodes), so even a bomb just under the limit costs little."""
    return _run(text, lambda loader: loader.get_single_data(), max_nodes)


def load_all(text: str) -> list:
    """The value of every document, like ``list(yaml.safe_load_all(text))``."""
    return [data for _node, data in _run(text, _documents_with_nodes, MAX_NODES)]


def load_all_with_nodes(text: str) -> list[tuple[Node, object]]:
    """``(node, value)`` of every document: the node tree keeps each value's marks
    (line, column, index). Constructing flattens merge keys into the mapping nodes, as PyYAML
    does."""
    return _run(text, _documents_with_nodes, MAX_NODES)


def written_pairs(node: MappingNode) -> list:
    """The ``(key, value)`` node pairs written in the mapping itself, without those a merge key
    (``<<``) brought in; after construction ``node.value`` holds both."""
    written = getattr(node, "written", None)
    if written is None:
        return list(node.value)
    return node.value[len(node.value) - written:] if written else []
