"""astro-embedding-explorer: explore survey objects through the embeddings of a self-supervised model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("astro-embedding-explorer")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
