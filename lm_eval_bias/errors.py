"""The one exception type for user errors (bad input, missing data, impossible settings)."""


class BiasEvalError(Exception):
    """A problem the user can fix. Its message is one line: what, where, and what to do."""
