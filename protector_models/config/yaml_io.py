"""Reading a config file as YAML, strictly: UTF-8, safe tags only, no anchors or aliases, no duplicate keys.

Aliases are refused because a few hundred bytes of nested aliases expand to gigabytes once the config is
validated, printed or dumped; duplicate keys because YAML would silently keep the last one.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from yaml.error import Mark, MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode

from protector_models.errors import ConfigError, shown

MAX_BYTES = 1 << 20
"""Config files are small; anything larger is almost surely the wrong file."""

MAX_DEPTH = 32
"""Deepest nesting of mappings and lists (a config needs about five levels)."""


class _NotAllowedError(MarkedYAMLError):
    """A YAML feature that configs may not use, at a position in the file."""

    def __init__(self, message: str, mark: Mark | None) -> None:
        super().__init__(problem=message, problem_mark=mark)
        self.message = message
        self.mark = mark


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` without anchors, aliases or duplicate keys, nesting at most :data:`MAX_DEPTH` deep,
    and with YAML 1.2 floats (``1e-3``, which YAML 1.1 reads as a string)."""

    _depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise _NotAllowedError(
                "anchors and aliases (&name, *name) are not allowed in a config; write the value out in full",
                event.start_mark,
            )
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _NotAllowedError(f"nested more than {MAX_DEPTH} levels deep", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise _NotAllowedError("merge keys (<<) are not allowed in a config", key_node.start_mark)
            key = self.construct_object(key_node, deep=True)
            try:
                if key in first_line:
                    raise _NotAllowedError(
                        f"duplicate key {shown(key)} (first on line {first_line[key] + 1}); each key may appear once",
                        key_node.start_mark,
                    )
                first_line[key] = key_node.start_mark.line
            except TypeError:
                pass  # an unhashable key: the base constructor says so
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        if len(node.value) > 64:  # int() refuses more than 4,300 digits, with advice meant for programmers
            raise _NotAllowedError(f"a number of {len(node.value)} characters is too long", node.start_mark)
        return int(super().construct_yaml_int(node))


class ConfigDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that quotes the strings :class:`ConfigLoader` would read as floats (``'1e-3'``)."""


_YAML12_FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$")
ConfigLoader.add_constructor("tag:yaml.org,2002:int", ConfigLoader.construct_yaml_int)
for _cls in (ConfigLoader, ConfigDumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _YAML12_FLOAT, list("-+0123456789."))


def dump_config_yaml(data: Any) -> str:
    """YAML that :func:`read_config_yaml` reads back to equal data."""
    return yaml.dump(data, Dumper=ConfigDumper, sort_keys=False, allow_unicode=True)


def read_config_yaml(path: Path) -> Any:
    """The YAML document in ``path``; every problem is a :class:`ConfigError` naming the file (and line)."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error.strerror or error}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(f"{path} is larger than {MAX_BYTES // 1024} KiB, too large for a config file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        column = error.start - (raw.rfind(b"\n", 0, error.start) + 1) + 1
        raise ConfigError(
            f"{path} is not UTF-8 text: byte 0x{raw[error.start]:02x} at line {line}, column {column} cannot be "
            "decoded; save the file as UTF-8"
        ) from None
    try:
        return yaml.load(text, Loader=ConfigLoader)  # a SafeLoader subclass: no Python tags
    except _NotAllowedError as error:
        where = f" line {error.mark.line + 1}" if error.mark else ""
        raise ConfigError(f"{path}{where}: {error.message}") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
