"""camxfer: move camera frames from ring-buffer folders to storage hosts, fast and whole."""

__version__ = "0.1.0"
