"""Replicated's request and response shapes, and the check that an answer has them.

The fixtures in ``fixtures/`` are transcribed from the ``replicatedhq/replicated`` client's Go
types (its binary cannot be installed here). A fixture names its types at the top level
(``"Customer": {...}``); a response refers to one by that name (``{"customer": "Customer"}``).
"""

import json
from pathlib import Path

FIXTURES = Path(__file__).parent / "fixtures"


def replicated(name: str) -> dict:
    """The fixture ``fixtures/<name>.json`` as it is written."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def expand(fixture: dict, example):
    """``example`` with every type name of ``fixture`` replaced by that type (recursively)."""
    if isinstance(example, str) and example[:1].isupper() and isinstance(fixture.get(example), dict):
        return expand(fixture, fixture[example])
    if isinstance(example, dict):
        return {key: expand(fixture, sub) for key, sub in example.items()}
    if isinstance(example, list):
        return [expand(fixture, sub) for sub in example]
    return example


def _unindexed(path: str) -> str:
    return path.replace("[]", "")


def assert_shape(value, example, *, nullable=(), where=""):
    """``value`` carries every key of Replicated's ``example`` with the same JSON type (recursively).

    ``nullable`` names the paths (``channels[].releaseSequence``) where ``null`` stands for a
    value there is not yet, such as the release of a channel nothing was promoted to.
    """
    if isinstance(example, dict):
        assert isinstance(value, dict), f"{where}: {value!r} is not an object"
        for key, sub in example.items():
            path = f"{where}.{key}" if where else key
            assert key in value, f"{path} is missing from {sorted(value)}"
            if value[key] is None and any(_unindexed(path).endswith(_unindexed(n)) for n in nullable):
                continue
            assert_shape(value[key], sub, nullable=nullable, where=path)
    elif isinstance(example, list):
        assert isinstance(value, list), f"{where}: {value!r} is not a list"
        for item in value[:1]:
            if example:
                assert_shape(item, example[0], nullable=nullable, where=where + "[]")
    elif isinstance(example, bool):
        assert isinstance(value, bool), f"{where}: {value!r} is not a boolean"
    elif isinstance(example, int):
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r} is not a number"
    elif isinstance(example, str):
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
    elif example is None:
        assert value is None, f"{where}: {value!r} is not null"
