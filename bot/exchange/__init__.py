"""Taking comments out (JSON, WordPress WXR) and bringing old ones in (WXR, Disqus)."""
