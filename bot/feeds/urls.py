"""URL canonicalisation: the one form of a post link used to de-duplicate posts."""

from __future__ import annotations

import re
from urllib.parse import urljoin, urlsplit, urlunsplit

# Query parameters that only track where a click came from; they never select content.
_TRACKING_KEYS = frozenset(
    {
        "fbclid", "gclid", "dclid", "gbraid", "wbraid", "msclkid", "yclid", "igshid", "twclid",
        "mc_cid", "mc_eid", "_hsenc", "_hsmi", "mkt_tok", "oly_anon_id", "oly_enc_id", "vero_id",
        "__s", "_ga", "_gl", "ref_src",
    }
)  # fmt: skip
_TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


def _is_tracking(pair: str) -> bool:
    key, _, value = pair.partition("=")
    key = key.lower()
    if key in _TRACKING_KEYS or key.startswith(_TRACKING_PREFIXES):
        return True
    # Medium and friends: ?source=rss----abc---4 marks the feed as the referrer.
    return key == "source" and value.lower().startswith("rss")


def _clean_netloc(scheme: str, netloc: str) -> str:
    userinfo, at, hostport = netloc.rpartition("@")
    if hostport.startswith("["):  # IPv6 literal
        close = hostport.find("]")
        host, port = hostport[: close + 1], hostport[close + 1 :].removeprefix(":")
    else:
        host, _, port = hostport.partition(":")
    host = host.lower().rstrip(".")
    if port == _DEFAULT_PORTS.get(scheme) or port == "":
        port_part = ""
    else:
        port_part = ":" + port
    return f"{userinfo}{at}{host}{port_part}"


def _clean_text(url: str) -> str:
    # Browsers drop control characters and encode inner spaces; so do we.
    return _CONTROL.sub("", url).strip().replace(" ", "%20")


def canonicalize_url(url: str, base: str | None = None) -> str:
    """The canonical form of ``url`` (resolved against ``base`` when relative).

    Scheme and host are lower-cased, a default port is dropped, tracking query
    parameters (``utm_*``, ``fbclid``...) are removed, an empty path becomes ``/``; the path and the
    remaining query and the fragment (an item's own anchor on some blogs) are left as they were. Total (never raises: a URL that cannot be split
    comes back stripped) and idempotent.
    """
    text = _clean_text(url)
    try:
        if base:
            text = urljoin(_clean_text(base), text)
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        netloc = _clean_netloc(scheme, parts.netloc) if parts.netloc else ""
        query = "&".join(pair for pair in parts.query.split("&") if pair and not _is_tracking(pair))
        path = parts.path
        if netloc and not path:
            path = "/"
        # The fragment stays: some blogs (Scripting News) give every item its own #anchor on a day page.
        result = urlunsplit((scheme, netloc, path, query, parts.fragment))
        # urlunsplit drops a lone "?" or "#"; a second pass must give the same, so check it.
        if urlsplit(result).netloc != netloc:
            return text
        return result
    except ValueError:
        return text
