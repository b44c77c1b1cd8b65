"""Errors caused by what the user passed in, reported by the CLI as one line."""


class UserInputError(ValueError):
    """Bad user input (file, env, config value); the message names the problem and the fix."""


class TrainingDivergedError(RuntimeError):
    """A loss or gradient became NaN/Inf; the message names it and where its state was saved."""
