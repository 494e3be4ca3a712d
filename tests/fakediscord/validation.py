"""Discord's documented limits, answered as 400 / 50035 with an ``errors`` object like Discord's."""

from __future__ import annotations

import re
from typing import Any

from .errors import APIError, FormErrors

COMMAND_NAME = re.compile(r"^[-_\w]{1,32}$")
MAX_EMBEDS = 10
EMBED_TOTAL = 6000


def validate_embeds(embeds: list[dict[str, Any]], form: FormErrors, path: tuple[str | int, ...] = ("embeds",)) -> None:
    if len(embeds) > MAX_EMBEDS:
        form.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_EMBEDS} or fewer in length.")
    total = 0
    for index, embed in enumerate(embeds):
        here = (*path, index)
        for key, limit in (("title", 256), ("description", 4096)):
            value = embed.get(key)
            if value is not None:
                total += len(value)
                if len(value) > limit:
                    form.add((*here, key), "BASE_TYPE_MAX_LENGTH", f"Must be {limit} or fewer in length.")
        fields = embed.get("fields") or []
        if len(fields) > 25:
            form.add((*here, "fields"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        for findex, field in enumerate(fields):
            name, value = field.get("name"), field.get("value")
            if not name:
                form.add((*here, "fields", findex, "name"), "BASE_TYPE_REQUIRED", "This field is required")
            elif len(name) > 256:
                form.add((*here, "fields", findex, "name"), "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
            if not value:
                form.add((*here, "fields", findex, "value"), "BASE_TYPE_REQUIRED", "This field is required")
            elif len(value) > 1024:
                form.add((*here, "fields", findex, "value"), "BASE_TYPE_MAX_LENGTH",
                         "Must be 1024 or fewer in length.")
            total += len(name or "") + len(value or "")
        footer = (embed.get("footer") or {}).get("text")
        if footer is not None:
            total += len(footer)
            if len(footer) > 2048:
                form.add((*here, "footer", "text"), "BASE_TYPE_MAX_LENGTH", "Must be 2048 or fewer in length.")
        author = (embed.get("author") or {}).get("name")
        if author is not None:
            total += len(author)
            if len(author) > 256:
                form.add((*here, "author", "name"), "BASE_TYPE_MAX_LENGTH", "Must be 256 or fewer in length.")
    if total > EMBED_TOTAL:
        form.add(path, "MAX_EMBED_SIZE_EXCEEDED", "Embed size exceeds maximum size of 6000")


def validate_message(payload: dict[str, Any], *, require_body: bool = True, has_files: bool = False) -> None:
    form = FormErrors()
    content = payload.get("content")
    if content is not None and not isinstance(content, str):
        form.add(("content",), "BASE_TYPE_STRING", "Must be a string.")
    elif content is not None and len(content) > 2000:
        form.add(("content",), "BASE_TYPE_MAX_LENGTH", "Must be 2000 or fewer in length.")
    embeds = payload.get("embeds")
    if embeds is not None:
        validate_embeds(embeds, form)
    form.raise_if_any()
    if require_body and not (content or embeds or payload.get("sticker_ids") or payload.get("components")
                             or has_files or payload.get("poll")):
        raise APIError(400, 50006, "Cannot send an empty message")


def validate_thread_name(name: Any, path: tuple[str | int, ...] = ("name",)) -> None:
    form = FormErrors()
    if not isinstance(name, str) or not name.strip():
        form.add(path, "BASE_TYPE_REQUIRED", "This field is required")
    else:
        form.length(path, name, 1, 100)
    form.raise_if_any()


def validate_auto_archive(value: Any, form: FormErrors) -> None:
    if value is not None and value not in (60, 1440, 4320, 10080):
        form.add(("auto_archive_duration",), "BASE_TYPE_CHOICES", "Value must be one of {60, 1440, 4320, 10080}.")


def _validate_options(options: list[dict[str, Any]], form: FormErrors, path: tuple[str | int, ...], depth: int) -> None:
    if len(options) > 25:
        form.add(path, "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
    seen_optional = False
    names: set[str] = set()
    for index, option in enumerate(options):
        here = (*path, index)
        name = option.get("name", "")
        if not isinstance(name, str) or not COMMAND_NAME.match(name) or name != name.lower():
            form.add((*here, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
        if name in names:
            form.add((*here, "name"), "APPLICATION_COMMAND_OPTIONS_NAME_ALREADY_EXISTS", "Option name already exists")
        names.add(name)
        description = option.get("description", "")
        if not isinstance(description, str) or not 1 <= len(description) <= 100:
            form.add((*here, "description"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
        kind = option.get("type")
        if kind in (1, 2):
            if depth >= 2 or (kind == 2 and depth >= 1):
                form.add((*here, "type"), "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID", "Invalid nesting")
            _validate_options(option.get("options") or [], form, (*here, "options"), depth + 1)
            continue
        if option.get("required"):
            if seen_optional:
                form.add((*here, "required"), "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                         "Required options must be placed before non-required options")
        else:
            seen_optional = True
        choices = option.get("choices") or []
        if len(choices) > 25:
            form.add((*here, "choices"), "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if choices and option.get("autocomplete"):
            form.add((*here, "autocomplete"), "APPLICATION_COMMAND_OPTION_CHOICES_AUTOCOMPLETE",
                     "Autocomplete cannot be set with choices")
        for cindex, choice in enumerate(choices):
            form.length((*here, "choices", cindex, "name"), choice.get("name", ""), 1, 100)


def validate_commands(commands: Any) -> None:
    form = FormErrors()
    if not isinstance(commands, list):
        raise APIError(400, 50035, "Invalid Form Body",
                       {"_errors": [{"code": "BASE_TYPE_ARRAY", "message": "Must be an array."}]})
    if len(commands) > 100:
        form.add((), "BASE_TYPE_MAX_LENGTH", "Must be 100 or fewer in length.")
    seen: set[tuple[int, str]] = set()
    for index, command in enumerate(commands):
        kind = command.get("type", 1)
        name = command.get("name", "")
        if kind == 1:
            if not isinstance(name, str) or not COMMAND_NAME.match(name) or name != name.lower():
                form.add((index, "name"), "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
            description = command.get("description", "")
            if not isinstance(description, str) or not 1 <= len(description) <= 100:
                form.add((index, "description"), "BASE_TYPE_BAD_LENGTH", "Must be between 1 and 100 in length.")
            _validate_options(command.get("options") or [], form, (index, "options"), 0)
        else:
            form.length((index, "name"), name, 1, 32)
            if command.get("description"):
                form.add((index, "description"), "APPLICATION_COMMAND_CONTEXT_MENU_DESCRIPTION",
                         "Context menu commands cannot have description")
        if (kind, name) in seen:
            form.add((index, "name"), "APPLICATION_COMMANDS_DUPLICATE_NAME", f"Application command names must be unique: {name}")
        seen.add((kind, name))
    form.raise_if_any()
