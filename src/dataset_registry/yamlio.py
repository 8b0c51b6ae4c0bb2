"""Safe YAML loading that remembers where every value came from.

PyYAML's safe loader silently keeps the last of two equal keys and forgets
line numbers; manifests need both errors and locations, so we walk the
composed node tree ourselves (still the safe constructor for scalars).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from .errors import ManifestError

try:
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _Loader = yaml.SafeLoader

Path = tuple[Any, ...]


class LineMap:
    """Maps a path of keys and indexes inside a document to its 1-based line."""

    def __init__(self, file: str) -> None:
        self.file = file
        self._lines: dict[Path, int] = {}
        self.quoted: set[Path] = set()  # scalars written in quotes ('...' or "...")

    def set(self, path: Path, line: int) -> None:
        self._lines[path] = line

    def set_default(self, path: Path, line: int) -> None:
        self._lines.setdefault(path, line)

    def line(self, path: Path) -> int | None:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path:
            if path in self._lines:
                return self._lines[path]
            path = path[:-1]
        return self._lines.get(())

    def where(self, path: Path) -> str:
        line = self.line(path)
        return f"{self.file}:{line}" if line else self.file


MAX_NODES = 100_000
"""Values a document may expand to beyond one a character of its text: YAML aliases and
merge keys copy the nodes they name, so a few hundred bytes of nested aliases (a
"billion laughs") would otherwise expand to billions of values."""


def load_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; raise ManifestError naming file and line on any problem."""
    lines = LineMap(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _Builder(loader, lines, text).build(node, ()), lines
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{file}:{mark.line + 1}" if mark else file
        raise ManifestError(f"{where}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ManifestError(f"{file}: invalid YAML: {exc}") from None
    finally:
        loader.dispose()


_PLAIN_TAGS = {yaml.MappingNode: "tag:yaml.org,2002:map",
               yaml.SequenceNode: "tag:yaml.org,2002:seq"}
_MERGE = "tag:yaml.org,2002:merge"
_ANCHOR = re.compile(r"&([^\s,\[\]{}]+)")


class _Builder:
    """Python values from composed nodes, counting every value made: the composed tree
    shares an aliased node, but its values are copies (callers may change them), so the
    count is what bounds time and memory."""

    def __init__(self, loader: Any, lines: LineMap, text: str) -> None:
        self.loader, self.lines, self.text = loader, lines, text
        self.budget = MAX_NODES + len(text)
        self.seen: set[int] = set()  # nodes built once: meeting one again is an alias
        self.alias: tuple[yaml.Node, Path] | None = None  # the outermost alias being built

    def build(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self.seen and self.alias is None:
            self.alias = (node, path)
            try:
                return self.build(node, path)
            finally:
                self.alias = None
        self.seen.add(id(node))
        self._count(node, path)
        lines = self.lines
        lines.set_default(path, node.start_mark.line + 1)
        plain = _PLAIN_TAGS.get(type(node))
        if plain and node.tag != plain:
            raise ManifestError(f"{file_line(lines, node)}: unsupported YAML tag {node.tag!r}")
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        if node.style in ("'", '"'):
            lines.quoted.add(path)
        return self.loader.construct_object(node, deep=True)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        # `<<: *anchor` (or a list of them) first: the mapping's own keys override merged ones,
        # and among merged mappings the first wins (the YAML merge key spec)
        merged: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            sources = value_node.value if isinstance(value_node, yaml.SequenceNode) \
                else [value_node]
            for source in sources:
                if not isinstance(source, yaml.MappingNode):
                    raise ManifestError(f"{file_line(self.lines, key_node)}: `<<` merges "
                                        "mappings only")
                for key, value in self.build(source, path).items():
                    merged.setdefault(key, value)
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise ManifestError(f"{file_line(self.lines, key_node)}: mapping keys must be "
                                    "scalars")
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise ManifestError(f"{file_line(self.lines, key_node)}: mapping keys must be "
                                    "scalars")
            if key in result:
                raise ManifestError(
                    f"{file_line(self.lines, key_node)}: duplicate key {key!r}"
                    + (f" in {dotted(path)}" if path else ""))
            self.lines.set((*path, key), key_node.start_mark.line + 1)
            result[key] = self.build(value_node, (*path, key))
        return {**{k: v for k, v in merged.items() if k not in result}, **result}

    def _count(self, node: yaml.Node, path: Path) -> None:
        self.budget -= 1
        if self.budget >= 0:
            return
        if self.alias is not None:
            node, path = self.alias
        anchor = _ANCHOR.match(self.text, node.start_mark.index)
        what = f"alias *{anchor.group(1)}" if anchor else "an alias"
        at = f"{dotted(path)}: " if path else ""
        raise ManifestError(
            f"{self.lines.where(path)}: {at}{what} expands the document past "
            f"{MAX_NODES + len(self.text):,} values (nested aliases, a \"billion laughs\"?); "
            "write the values out or nest fewer aliases")


def file_line(lines: LineMap, node: yaml.Node) -> str:
    return f"{lines.file}:{node.start_mark.line + 1}"


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out

