"""The ``segstream`` subcommands; each module exposes ``add_parser`` and ``run``."""
