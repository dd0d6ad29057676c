"""The version-controlled registry of named exit policies (`policies.yaml`).

Integrity rules:

- ids are matched whole (`fixed-stop-5pct\n` is not `fixed-stop-5pct`);
- the file is read with a loader that refuses YAML anchors, aliases and
  duplicate keys (a few hundred bytes of aliases can expand to gigabytes);
  JSON policies with a duplicate key or a non-finite number are refused;
- `add_policy` is a read-modify-write under an exclusive `flock` on
  `policies.yaml.lock` beside the file, so concurrent writers lose nothing;
- a new policy is appended to the file as text (comments and hand
  formatting stay as they are) and the result renamed into place; only a
  file whose `policies:` block cannot be appended to is rewritten whole.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from quantbot_assets.engine import Policy, parse_policy
from quantbot_assets.errors import DataError
from quantbot_assets.rundir import atomic_write_bytes

# A policy id is a partition key and a path part: no '|', ',', '/', spaces.
POLICY_ID_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
MAX_REGISTRY_BYTES = 16 << 20

HEADER = """\
# The policy registry: named exit policies, one per policy id.
# Policy ids are partition keys of the `trades` and `summary` assets: keep them
# stable, never change the definition under an existing id (add a new id).
# Fields and semantics: docs/semantics.md (Policies, Replay) and docs/engine.md.
# `quantbot policies sync` (and the policy_registry_sensor) registers new ids
# with Dagster; `quantbot backtest policy --policy-id ID --policy JSON` adds one.
"""


class RegistryError(DataError, ValueError):
    """The registry file or a policy in it is invalid."""


def check_policy_id(policy_id: str) -> str:
    if not isinstance(policy_id, str) or not POLICY_ID_PATTERN.fullmatch(policy_id):
        raise RegistryError(
            f"policy id {policy_id!r} is invalid: use lowercase letters, digits, '.', '_' "
            "and '-' (at most 64 characters, starting with a letter or digit)"
        )
    return policy_id


def _tidy(value: Any) -> Any:
    """Whole-number floats as ints (500 rather than 500.0), recursively."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _tidy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_tidy(item) for item in value]
    return value


def plain_policy(policy: Policy) -> dict[str, Any]:
    """A validated policy as plain JSON data, without unset optional fields."""
    return _tidy(policy.model_dump(mode="json", exclude_none=True))


def policy_json(policy: Policy) -> str:
    """Canonical JSON of a validated policy (stable key order)."""
    return json.dumps(plain_policy(policy), sort_keys=True, separators=(",", ":"))


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and duplicate mapping keys."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.constructor.ConstructorError(
                None, None, "YAML aliases (*name) are not allowed", event.start_mark
            )
        event = self.peek_event()
        if getattr(event, "anchor", None) is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "YAML anchors (&name) are not allowed", event.start_mark
            )
        return super().compose_node(parent, index)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                if not isinstance(key, Hashable):
                    break  # SafeLoader refuses unhashable keys itself
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"duplicate key {key!r}",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def strict_yaml_load(text: str) -> Any:
    """Parse YAML with `_StrictLoader` (no anchors, aliases or duplicate keys)."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"invalid policy JSON: duplicate key {key!r}")
        result[key] = value
    return result


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"invalid policy JSON: {name} is not a number")


def load_policy_json(text: str) -> Any:
    """Policy JSON text as data; duplicate keys and NaN/Infinity are refused."""
    try:
        return json.loads(
            text, object_pairs_hook=_refuse_duplicates, parse_constant=_refuse_constant
        )
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid policy JSON: {exc}") from None
    except RecursionError:
        raise ValueError("invalid policy JSON: nested too deeply") from None


def _read_text(path: Path) -> str:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_REGISTRY_BYTES + 1)
    except FileNotFoundError as exc:
        raise RegistryError(f"policy registry {path} does not exist") from exc
    if len(data) > MAX_REGISTRY_BYTES:
        raise RegistryError(f"policy registry {path} is over {MAX_REGISTRY_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"policy registry {path} is not UTF-8: {exc}") from None


def _parse_registry(text: str, path: Path) -> dict[str, Any]:
    try:
        document = strict_yaml_load(text) or {}
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())
        raise RegistryError(f"policy registry {path} is not valid YAML: {message}") from None
    except RecursionError:
        raise RegistryError(f"policy registry {path} is nested too deeply") from None
    policies = document.get("policies") if isinstance(document, dict) else None
    if not isinstance(policies, dict):
        raise RegistryError(f"policy registry {path} needs a top-level 'policies:' mapping")
    return policies


def _raw_policies(path: Path) -> dict[str, Any]:
    return _parse_registry(_read_text(path), path)


def load_registry(path: Path) -> dict[str, Policy]:
    """All policies of the registry, validated; raises RegistryError naming the id."""
    registry: dict[str, Policy] = {}
    for policy_id, raw in _raw_policies(path).items():
        check_policy_id(str(policy_id))
        try:
            registry[str(policy_id)] = parse_policy(raw)
        except ValueError as exc:
            raise RegistryError(f"policy {policy_id!r} in {path}: {exc}") from exc
    return registry


def get_policy(path: Path, policy_id: str) -> Policy:
    return get_policies(path, [policy_id])[policy_id]


def get_policies(path: Path, policy_ids: Sequence[str]) -> dict[str, Policy]:
    """The registry's policies of `policy_ids`, from one reading of the file."""
    registry = load_registry(path)
    for policy_id in policy_ids:
        if policy_id not in registry:
            known = ", ".join(sorted(registry)) or "none"
            raise RegistryError(f"policy id {policy_id!r} is not in {path} (known: {known})")
    return {policy_id: registry[policy_id] for policy_id in policy_ids}


def lock_path(path: Path) -> Path:
    return Path(f"{path}.lock")


@contextmanager
def registry_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive cross-process lock of the registry `path` for the block."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_POLICIES_LINE = re.compile(r"^policies:[ \t]*(#.*)?$")
_TOP_LEVEL_LINE = re.compile(r"^[^\s#]")
_KEY_LINE = re.compile(r"^([ ]+)[^\s#-]")


def _flow(value: Any) -> str:
    """One YAML value on one line (a scalar, or a flow-style collection)."""
    dumped = yaml.safe_dump([value], default_flow_style=True, sort_keys=False, width=1 << 16)
    return dumped.strip()[1:-1]


def _entry_text(policy_id: str, data: dict[str, Any], indent: int) -> str:
    """A registry entry in the file's style: block mappings, list items in flow style."""
    lines = [f"{policy_id}:"]

    def block(mapping: dict[str, Any], depth: int) -> None:
        pad = " " * (indent * depth)
        for key, value in mapping.items():
            if isinstance(value, dict):
                lines.append(f"{pad}{key}:")
                block(value, depth + 1)
            elif isinstance(value, list) and value:
                lines.append(f"{pad}{key}:")
                lines.extend(f"{pad}{' ' * indent}- {_flow(item)}" for item in value)
            else:
                lines.append(f"{pad}{key}: {_flow(value)}")

    block(data, 1)
    return "".join(" " * indent + line + "\n" for line in lines)


def _appended(text: str, policy_id: str, data: dict[str, Any]) -> str | None:
    """`text` with the policy appended at the end of its `policies:` block (None if
    that block is not the file's last top-level block in block style)."""
    lines = text.splitlines()
    start = None
    for number, line in enumerate(lines):
        if _TOP_LEVEL_LINE.match(line):
            start = number if _POLICIES_LINE.match(line) else None
    if start is None:
        return None  # no `policies:` block last (or a flow-style one)
    indent = 2
    for line in lines[start + 1 :]:
        key = _KEY_LINE.match(line)
        if key:
            indent = len(key.group(1))
            break
    if not text.endswith("\n"):
        text += "\n"
    return text + _entry_text(policy_id, data, indent)


def add_policy(path: Path, policy_id: str, policy: str | dict[str, Any] | Policy) -> bool:
    """Register `policy` under `policy_id`; return True if it was new.

    The same definition under the same id is a no-op; a different definition
    under an existing id is refused (ids name results already computed).
    """
    check_policy_id(policy_id)
    parsed = parse_policy(load_policy_json(policy) if isinstance(policy, str) else policy)
    path = Path(path)
    with registry_lock(path):
        text = _read_text(path) if path.exists() else ""
        raw = _parse_registry(text, path) if text.strip() else {}
        if policy_id in raw:
            existing = parse_policy(raw[policy_id])
            if policy_json(existing) != policy_json(parsed):
                raise RegistryError(
                    f"policy id {policy_id!r} already names a different policy in {path}: "
                    f"{policy_json(existing)}; choose a new id"
                )
            return False
        data = plain_policy(parsed)
        expected = {**raw, policy_id: data}
        new_text = _appended(text, policy_id, data) if text.strip() else None
        if new_text is None or _parse_registry(new_text, path) != expected:
            # Nothing to append to: the whole file in the standard layout.
            body = yaml.safe_dump({"policies": expected}, sort_keys=False, default_flow_style=None)
            new_text = (HEADER if not text.strip() else _leading_comments(text)) + body
        atomic_write_bytes(path, new_text.encode())
    return True


def _leading_comments(text: str) -> str:
    """The comment lines at the top of `text` (kept when the file is rewritten)."""
    kept = []
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            kept.append(line + "\n")
        else:
            break
    return "".join(kept)
