"""What an error says, as one short line for a log line or a user-facing message: library
errors (botocore, kombu, pyarrow, libpq) span several lines and can run to kilobytes."""

from __future__ import annotations


def one_line(error: BaseException, limit: int = 300, with_type: bool = False) -> str:
    """``error``'s text with its whitespace collapsed, at most ``limit`` characters (cut
    with "..."); with ``with_type``, led by its class name unless the text already names it
    (and the class name alone when the error has no text)."""
    name = type(error).__name__
    text = " ".join(str(error).split())
    if with_type and name not in text:
        text = f"{name}: {text}" if text else name
    return text if len(text) <= limit else text[: limit - 3] + "..."
