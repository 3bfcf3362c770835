"""Reading: where datasets live (local or any fsspec URL), their layouts, and their audio.

Nothing here knows about features or runs: :mod:`features.engine` and the
commands above it call in, never the other way round.
"""
