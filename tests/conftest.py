"""Suite-wide checks: loopback-only sockets, and Discord's OpenAPI spec for every emulator exchange."""

from __future__ import annotations

pytest_plugins = ["tests.fakediscord.harness", "tests.fakediscord.checks"]
