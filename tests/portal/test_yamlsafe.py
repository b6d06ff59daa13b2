"""portal.yamlsafe: PyYAML's safe loader, refusing bombs and deep nesting before building them."""

import re

import pytest
import yaml

from portal import yamlsafe
from portal.yamlsafe import MAX_DEPTH, YAMLLimitError
from tests.yaml_bombs import alias_bomb, block_nesting, merge_bomb

BUDGET_MESSAGE = re.escape("expands to more than 1,000,000 nodes (aliases and merge keys counted as copies)")
MERGE_MESSAGE = re.escape("expands to more than 100,000 merged nodes (aliases and merge keys counted "
                          "as copies)")
DEPTH_MESSAGE = "nested more than 100 levels deep"


def test_the_bombs_are_small():
    assert len(merge_bomb()) <= 500
    assert len(alias_bomb()) <= 500


@pytest.mark.parametrize("read", [yamlsafe.load, yamlsafe.load_all, yamlsafe.load_all_with_nodes])
@pytest.mark.parametrize("text, message", [
    (merge_bomb(), MERGE_MESSAGE), (alias_bomb(), BUDGET_MESSAGE), (merge_bomb(7), MERGE_MESSAGE),
], ids=["merge9", "laughs", "merge7"])
def test_it_refuses_alias_and_merge_key_bombs_while_composing(read, text, message):
    with pytest.raises(YAMLLimitError, match=message) as refused:
        read(text)
    assert refused.value.problem_mark.line >= 1  # points at the alias that crossed the budget


@pytest.mark.parametrize("text", [
    "[" * 2000 + "]" * 2000,
    "{a: " * 2000 + "1" + "}" * 2000,
    "[" * 1_000_000,  # unclosed: refused at level 101, long before the syntax error at the end
    block_nesting(MAX_DEPTH + 1),
], ids=["flow-lists", "flow-maps", "million-open", "block-101"])
def test_it_refuses_deep_nesting_before_python_recursion(text):
    with pytest.raises(YAMLLimitError, match=DEPTH_MESSAGE):
        yamlsafe.load_all(text)


def test_a_hundred_levels_are_fine():
    value = yamlsafe.load(block_nesting(MAX_DEPTH))
    for _ in range(MAX_DEPTH - 1):
        (value,) = value.values()
    assert value == {"k": "v"}
    assert yamlsafe.load("[" * MAX_DEPTH + "]" * MAX_DEPTH) is not None


def test_the_budget_is_for_the_whole_text():
    """Copies spread over many documents count together."""
    document = "a: &a [" + ",".join(["x"] * 1000) + "]\nb: [" + ",".join(["*a"] * 100) + "]\n"
    assert len(yamlsafe.load_all(document)) == 1
    with pytest.raises(YAMLLimitError, match=BUDGET_MESSAGE):
        yamlsafe.load_all("---\n".join([document] * 11))


def test_a_value_cannot_contain_itself():
    with pytest.raises(yaml.YAMLError, match="inside the node it names"):
        yamlsafe.load("a: &a [1, *a]\n")


@pytest.mark.parametrize("text, message", [
    ("a: !!int foo\n", "cannot read 'foo' as int"),
    ("a: 2024-13-01\n", "cannot read '2024-13-01' as timestamp: month must be in 1..12"),
    ("a: " + "9" * 5000 + "\n", "as int"),
])
def test_a_value_its_type_cannot_read_is_a_yaml_error_at_its_line(text, message):
    with pytest.raises(yaml.constructor.ConstructorError, match=message) as refused:
        yamlsafe.load(text)
    assert (refused.value.problem_mark.line, refused.value.problem_mark.column) == (0, 3)


MERGES = """\
base: &base {a: 1, b: 2}
other: &other {c: 3}
child:
  <<: [*base, *other]
  b: 20
list: &list [1, 2]
again: *list
when: 2030-01-31
bits: !!binary aGVsbG8=
set: !!set {x, y}
"""


@pytest.mark.parametrize("text", [MERGES, "", "a: 1\n", "- x\n- {y: [1, 2.5, null, true, 'q']}\n"])
def test_it_reads_what_safe_load_reads(text):
    assert yamlsafe.load(text) == yaml.safe_load(text)


def test_it_reads_every_document_as_safe_load_all():
    text = "a: 1\n---\n---\n- 2\n...\n---\nb: &x 3\nc: *x\n"
    assert yamlsafe.load_all(text) == list(yaml.safe_load_all(text))
    nodes = yamlsafe.load_all_with_nodes(text)
    assert [data for _node, data in nodes] == list(yaml.safe_load_all(text))
    assert [node.start_mark.line for node, _data in nodes] == [0, 2, 3, 6]


def test_one_document_is_expected_by_load():
    with pytest.raises(yaml.YAMLError, match="expected a single document"):
        yamlsafe.load("a: 1\n---\nb: 2\n")


def test_marks_index_characters_not_bytes():
    text = "name: “é”\nimage: nginx:1.25\n"
    ((node, _data),) = yamlsafe.load_all_with_nodes(text)
    image = node.value[1][1]
    assert text[image.start_mark.index:image.end_mark.index] == "nginx:1.25"


@pytest.mark.parametrize("text", [
    "a: [", "a:\n\tb: 1\n", "a: b: c\n", "- a\nb: 1\n", "{a: 1", "\x07", "a: |\n  x\n b\n",
    "%YAML 2.0\n---\na\n", "a: 'open\n", "a: *x\n", "a: &x 1\nb: &x 2\n", "? [a]\n: 1\n",
])
def test_syntax_errors_read_as_pyyaml_writes_them(text):
    """Where libyaml is used for speed, its refusals are read again by the pure-Python reader,
    so the editor keeps PyYAML's messages and positions."""
    with pytest.raises(yaml.YAMLError) as expected:
        yaml.load(text, Loader=yaml.SafeLoader)
    with pytest.raises(yaml.YAMLError) as refused:
        yamlsafe.load(text)
    assert type(refused.value) is type(expected.value)
    assert what_and_where(refused.value) == what_and_where(expected.value)


def what_and_where(error):
    """What the editor shows of an error: its problem, context and position."""
    mark = getattr(error, "problem_mark", None)
    return (getattr(error, "problem", str(error)), getattr(error, "context", None),
            mark and (mark.line, mark.column))


def merges(count: int) -> str:
    """A 1,000-key anchored mapping merged ``count`` times: about 2,000 nodes copied per merge."""
    keys = ", ".join(f"k{n}: {n}" for n in range(1000))
    return f"base: &b {{{keys}}}\nmore:\n" + "".join(f"- {{<<: *b, n: {n}}}\n" for n in range(count))


def test_merge_keys_have_a_budget_of_their_own():
    # Constructing flattens every merge into a real copy (a plain alias stays one shared object):
    # 49 merges of 2,001 nodes are read, 50 (100,050 nodes copied) are refused while composing.
    assert len(yamlsafe.load(merges(49))["more"]) == 49
    with pytest.raises(YAMLLimitError, match=MERGE_MESSAGE):
        yamlsafe.load(merges(50))
    # The same nodes as plain aliases stay within the general budget.
    keys = ", ".join(f"k{n}: {n}" for n in range(1000))
    assert len(yamlsafe.load(f"base: &b {{{keys}}}\nmore: [" + ", ".join(["*b"] * 400) + "]\n")["more"]) == 400
