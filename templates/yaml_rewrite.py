"""Rewriting one top-level section of a config YAML (`provider`, `tools`) while keeping the rest of
the text as written."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from agents.runtime.validation import ConfigError
from agents.yaml_loader import load_yaml


def config_yaml_with(config_yaml: str, name: str, value: Any) -> str:
    """`config_yaml` with its top-level section `name` replaced by `value`. The rest of the text is
    kept as written (comments, layout) when the section can be cut out cleanly, else the whole
    document is written out again."""
    document = load_yaml(config_yaml)
    wanted = {**document, name: value}
    section = _dump({name: value})
    root = yaml.compose(config_yaml, Loader=yaml.SafeLoader)
    for key, node in root.value if isinstance(root, yaml.MappingNode) else ():
        if key.value == name:
            rest = config_yaml[node.end_mark.index :]
            text = config_yaml[: key.start_mark.index] + section + rest.removeprefix("\n")
            try:
                if load_yaml(text) == wanted:
                    return text
            except ConfigError:
                pass
            break
    return _dump(wanted)


class _ConfigDumper(yaml.SafeDumper):
    """Writes multi-line strings (system prompts) as literal blocks, as people write them."""


def _represent_str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ConfigDumper.add_representer(str, _represent_str)


def _dump(document: Mapping[str, Any]) -> str:
    return yaml.dump(dict(document), Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=100)
