"""Safe YAML loading that remembers where every value came from.

PyYAML's safe loader silently keeps the last of two equal keys and forgets
line numbers; manifests need both errors and locations, so we walk the
composed node tree ourselves (still the safe constructor for scalars).
"""

from __future__ import annotations

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


def load_yaml(text: str, file: str) -> tuple[Any, LineMap]:
    """Parse one YAML document; raise ManifestError naming file and line on any problem."""
    lines = LineMap(file)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, lines
        return _to_python(loader, node, (), lines), lines
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


def _to_python(loader: Any, node: yaml.Node, path: Path, lines: LineMap) -> Any:
    lines.set_default(path, node.start_mark.line + 1)
    plain = _PLAIN_TAGS.get(type(node))
    if plain and node.tag != plain:
        raise ManifestError(f"{file_line(lines, node)}: unsupported YAML tag {node.tag!r}")
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)):
                raise ManifestError(f"{file_line(lines, key_node)}: mapping keys must be scalars")
            if key in result:
                raise ManifestError(
                    f"{file_line(lines, key_node)}: duplicate key {key!r}"
                    + (f" in {dotted(path)}" if path else ""))
            lines.set((*path, key), key_node.start_mark.line + 1)
            result[key] = _to_python(loader, value_node, (*path, key), lines)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(loader, item, (*path, i), lines) for i, item in enumerate(node.value)]
    if node.style in ("'", '"'):
        lines.quoted.add(path)
    return loader.construct_object(node, deep=True)


def file_line(lines: LineMap, node: yaml.Node) -> str:
    return f"{lines.file}:{node.start_mark.line + 1}"


def dotted(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out

