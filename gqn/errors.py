"""The toolkit's user-facing error types: the CLI prints their message as one line and exits non-zero."""


class GqnError(Exception):
    """An error caused by the user's input or environment (bad data, missing library, refused resume)."""


class ShardError(GqnError):
    """A shard or dataset directory that cannot be read or written as the gqn shard format."""
