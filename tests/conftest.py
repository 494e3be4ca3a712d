"""Suite-wide checks: loopback-only sockets, and Discord's OpenAPI spec for every emulator exchange."""

from __future__ import annotations

pytest_plugins = ["tests.fakediscord.harness", "tests.fakediscord.checks"]

# Imported here, at a shallow stack, on purpose: hypothesis's pytest plugin otherwise imports it late
# (in the terminal summary), and CPython 3.11.7's AST recursion check can fail spuriously there
# ("AST constructor recursion depth mismatch") after discord.py and the cogs were imported.
import hypothesis  # noqa: E402, F401
