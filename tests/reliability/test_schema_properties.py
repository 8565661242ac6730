"""Property-based (hypothesis) tests of the config schema over every key, not a hand-picked few.

tests/test_properties.py draws values for chosen keys (and the metric
properties: a perfect prediction scores 1, image order does not matter); here
any key of the shipped config may be given a value of a type the schema does
not allow, and any section may be given a key it does not know: each must be
refused with an error naming that key (its full path).
"""

from __future__ import annotations

import copy

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from snakemake.utils import validate

from helpers.workflow import REPO, tiny_config

SCHEMA_PATH = REPO / "workflow" / "schemas" / "config.schema.yaml"
SCHEMA = yaml.safe_load(SCHEMA_PATH.read_text())


def resolve(node: dict) -> dict:
    while "$ref" in node:
        assert node["$ref"].startswith("#/")
        target = SCHEMA
        for part in node["$ref"][2:].split("/"):
            target = target[part]
        node = target
    return node


def schema_of(path: tuple[str, ...]) -> dict | None:
    node = SCHEMA
    for key in path:
        node = resolve(node).get("properties", {}).get(key)
        if node is None:
            return None
    return resolve(node)


def walk(config: dict, path: tuple[str, ...] = ()):
    """(path, value) of every section and every leaf (lists are leaves)."""
    yield path, config
    for key, value in config.items():
        if isinstance(value, dict):
            yield from walk(value, path + (key,))
        else:
            yield path + (key,), value


CONFIG = tiny_config()
SECTIONS = sorted(path for path, value in walk(CONFIG) if isinstance(value, dict) and (schema_of(path) or {}).get("additionalProperties") is False)
LEAVES = sorted(path for path, value in walk(CONFIG) if not isinstance(value, dict) and "type" in (schema_of(path) or {}))

# one value of each JSON type; "integer" values are also numbers
SAMPLES = {"string": "x", "integer": 7, "number": 0.5, "boolean": True, "null": None, "array": [1], "object": {"k": 1}}


def wrong_types(path: tuple[str, ...]) -> list[str]:
    allowed = schema_of(path)["type"]
    allowed = {allowed} if isinstance(allowed, str) else set(allowed)
    if "number" in allowed:
        allowed.add("integer")
    return sorted(set(SAMPLES) - allowed)


def put(config: dict, path: tuple[str, ...], value) -> None:
    for key in path[:-1]:
        config = config[key]
    config[path[-1]] = value


def refused(config: dict) -> str:
    try:
        validate(config, str(SCHEMA_PATH))
    except Exception as error:
        return str(error)
    raise AssertionError("accepted")


def test_the_strategies_see_the_whole_config():
    assert len(LEAVES) > 80 and len(SECTIONS) > 10
    validate(copy.deepcopy(CONFIG), str(SCHEMA_PATH))  # the unedited config passes


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(LEAVES).flatmap(lambda path: st.tuples(st.just(path), st.sampled_from(wrong_types(path)))))
def test_a_value_of_the_wrong_type_is_refused_naming_its_key(case):
    path, json_type = case
    config = copy.deepcopy(CONFIG)
    put(config, path, copy.deepcopy(SAMPLES[json_type]))
    message = refused(config)
    assert "On instance" + "".join(f"[{key!r}]" for key in path) in message, message  # the full key path


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(SECTIONS), st.from_regex(r"[a-z][a-z0-9_]{0,14}", fullmatch=True))
def test_an_unknown_key_in_any_section_is_refused_naming_it(section, key):
    known = set(resolve(schema_of(section)).get("properties", {}))
    if key in known:
        return
    config = copy.deepcopy(CONFIG)
    target = config
    for part in section:
        target = target[part]
    target[key] = 1
    message = refused(config)
    assert f"'{key}' was unexpected" in message, message
