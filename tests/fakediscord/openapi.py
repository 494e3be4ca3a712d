"""Validate the emulator's exchanges against Discord's official OpenAPI spec.

The spec lives outside the repository, in ``../shared/discord-api-spec/openapi.json`` (the variable
``DISCORD_API_SPEC`` names another file, e.g. from a git worktree). In CI (``CI=true``) a missing spec
fails every test that would validate; elsewhere validation is skipped with one warning.
"""

from __future__ import annotations

import functools
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .emulator import LoggedRequest

DEFAULT_SPEC_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "discord-api-spec" / "openapi.json"
SPEC_PATH = Path(os.environ.get("DISCORD_API_SPEC") or DEFAULT_SPEC_PATH)
BASE_URI = "urn:discord-openapi"


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def missing_spec_message(path: Path = SPEC_PATH) -> str:
    return (f"Discord's OpenAPI spec is missing: {path} does not exist, so the emulator's REST exchanges "
            "cannot be checked against it (put the spec there, or name it with DISCORD_API_SPEC)")


def checker_or_fail(path: Path = SPEC_PATH) -> OpenAPIChecker | None:
    """The checker; without the spec, in CI the calling test fails with the missing path, elsewhere
    one warning says validation is off and ``None`` is returned."""
    checker = OpenAPIChecker.load(path)
    if checker is None:
        if in_ci():
            pytest.fail(missing_spec_message(path) + "; CI must validate", pytrace=False)
        _warn_once(missing_spec_message(path) + "; OpenAPI validation is skipped outside CI")
    return checker


def require_checker(path: Path = SPEC_PATH) -> OpenAPIChecker:
    """For tests about the spec itself: the checker, a failure in CI, or a skip elsewhere."""
    checker = checker_or_fail(path)
    if checker is None:
        pytest.skip(missing_spec_message(path))
    return checker


@functools.cache
def _warn_once(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def _snowflakes_as_strings(value: Any, key: str = "", parent: str = "") -> Any:
    """Discord accepts snowflakes sent as numbers (discord.py sends some that way); the spec says strings.

    Component ``id`` values are real integers and stay so; attachment ids (``0``, ``1``...) become strings.
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and (key.endswith("_id") or value >= 1 << 32
                                   or (key == "id" and parent == "attachments")):
        return str(value)
    if isinstance(value, dict):
        return {k: _snowflakes_as_strings(v, k, key) for k, v in value.items()}
    if isinstance(value, list):
        return [_snowflakes_as_strings(v, key, parent) for v in value]
    return value


def _deepest(error: ValidationError) -> ValidationError:
    """For ``oneOf``/``anyOf`` failures, the most telling error: from a branch whose ``type`` matched."""
    while error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0] if sub.relative_schema_path else None, []).append(sub)
        wrong_kind = {key for key, subs in branches.items()
                      if any(s.validator in ("enum", "const") and s.relative_path and s.relative_path[-1] == "type"
                             for s in subs)}
        candidates = [sub for key, subs in branches.items() if key not in wrong_kind for sub in subs]
        error = max(candidates or error.context, key=lambda e: len(e.absolute_path))
    return error


def _pointer(*parts: str) -> str:
    return "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass
class SpecPath:
    template: str
    regex: re.Pattern[str]
    literals: int


class OpenAPIChecker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        resource = Resource.from_contents(spec, default_specification=DRAFT202012)
        self.registry: Registry = Registry().with_resource(BASE_URI, resource)
        self.paths: list[SpecPath] = []
        for template in spec["paths"]:
            segments = template.strip("/").split("/")
            pattern = "/".join("[^/]+" if s.startswith("{") else re.escape(s) for s in segments)
            literals = sum(1 for s in segments if not s.startswith("{"))
            self.paths.append(SpecPath(template, re.compile(f"^/{pattern}$"), literals))
        self._validators: dict[str, Draft202012Validator | None] = {}

    @classmethod
    @functools.cache
    def load(cls, path: Path = SPEC_PATH) -> OpenAPIChecker | None:
        if not path.is_file():
            return None
        return cls(json.loads(path.read_text()))

    def match(self, path: str) -> str | None:
        candidates = [p for p in self.paths if p.regex.match(path)]
        if not candidates:
            return None
        return max(candidates, key=lambda p: p.literals).template

    def _validator(self, pointer: str) -> Draft202012Validator | None:
        if pointer not in self._validators:
            validator = Draft202012Validator({"$ref": f"{BASE_URI}#/{pointer}"}, registry=self.registry)
            self._validators[pointer] = validator
        return self._validators[pointer]

    def _resolve(self, node: Any) -> Any:
        while isinstance(node, dict) and "$ref" in node:
            parts = node["$ref"].lstrip("#/").split("/")
            target: Any = self.spec
            for part in parts:
                target = target[part.replace("~1", "/").replace("~0", "~")]
            node = target
        return node

    def check(self, entry: LoggedRequest) -> list[str]:
        """Problems with one exchange (empty when it matches the spec)."""
        path = entry.path.removeprefix("/api/v10")
        template = self.match(path)
        if template is None:
            return [f"{entry.method} {path}: no such path in Discord's OpenAPI spec"]
        operation = self.spec["paths"][template].get(entry.method.lower())
        if operation is None:
            return [f"{entry.method} {template}: method not in Discord's OpenAPI spec"]
        problems: list[str] = []
        base = ("paths", template, entry.method.lower())
        if isinstance(entry.body, dict | list) and "requestBody" in operation and entry.status < 400:
            content = self._resolve(operation["requestBody"]).get("content", {})
            if "application/json" in content:
                pointer = _pointer(*base, "requestBody", "content", "application/json", "schema")
                problems += self._validate(pointer, _snowflakes_as_strings(entry.body),
                                           f"{entry.method} {template} request")
        if entry.response is not None and entry.status != 429:
            responses = operation.get("responses", {})
            key = str(entry.status) if str(entry.status) in responses else f"{str(entry.status)[0]}XX"
            if key not in responses:
                problems.append(f"{entry.method} {template}: status {entry.status} not documented")
            else:
                response = self._resolve(responses[key])
                if "application/json" in response.get("content", {}):
                    if "$ref" in responses[key]:
                        ref = responses[key]["$ref"].lstrip("#/").split("/")
                        pointer = _pointer(*[p.replace("~1", "/") for p in ref], "content", "application/json",
                                           "schema")
                    else:
                        pointer = _pointer(*base, "responses", key, "content", "application/json", "schema")
                    problems += self._validate(pointer, entry.response,
                                               f"{entry.method} {template} response {entry.status}")
        return problems

    def _validate(self, pointer: str, instance: Any, what: str) -> list[str]:
        validator = self._validator(pointer)
        if validator is None:
            return []
        problems = []
        for found in sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))[:5]:
            error = _deepest(found)
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            problems.append(f"{what}: at {where}: {error.message[:300]}")
        return problems
