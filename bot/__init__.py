"""conversation-engine: a blog's posts as Discord threads, and the threads as the blog's comments."""

__version__ = "0.1.0"
