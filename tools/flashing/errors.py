"""The one error type the flashing tool shows to installers.

Every failure an installer can cause or meet (bad image, bad config, unsafe
target, interrupted write) becomes a FlashError: a message that says what
went wrong and a hint that says what to do next. The CLI prints both and
exits with status 2.
"""

from __future__ import annotations

EXIT_BAD_INPUT = 2


class FlashError(Exception):
    """A failure with a user-facing message and a next step."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def render(self) -> str:
        text = f"error: {self.message}"
        if self.hint:
            text += f"\n  what to do: {self.hint}"
        return text


class FatError(FlashError):
    """The boot partition's FAT file system is damaged, full or unsupported."""
