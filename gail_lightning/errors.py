"""Errors caused by what the user passed in, reported by the CLI as one line."""


class UserInputError(ValueError):
    """Bad user input (file, env, config value); the message names the problem and the fix."""


class TrainingDivergedError(RuntimeError):
    """A loss or gradient became NaN/Inf; the message names it and where its state was saved."""


def require_positive_model_args(**values: float) -> None:
    """Refuse model settings that must be > 0, naming the CLI flag to fix."""
    for name, value in values.items():
        if value <= 0:
            raise UserInputError(f"--model.{name} must be > 0, got {value}.")
