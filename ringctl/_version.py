"""The version of ringctl (one definition: the package, the CLI and the schema cache read it)."""

__version__ = "0.1.0"
