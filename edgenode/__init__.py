"""edgenode: the AI inference node of an EdgeFirst edge camera system."""

__version__ = "0.1.0"
