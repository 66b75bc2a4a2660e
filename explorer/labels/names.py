"""Label names (the built-in classes and user classes) and the checks on ids and user names the store applies."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from explorer.errors import DataError

MAX_LABEL_LENGTH = 64
MAX_USER_LENGTH = 128


class Label(StrEnum):
    """The built-in classes; users may add any other class name (see :func:`normalise_label`)."""

    ANOMALY = "anomaly"
    NORMAL = "normal"
    ARTEFACT = "artefact"


BUILTIN_LABELS: tuple[str, ...] = tuple(member.value for member in Label)


def normalise_label(name: str) -> str:
    """Return the stored form of a class name, or raise :class:`DataError` if it cannot be one.

    Surrounding white space is stripped; built-in names are matched case-insensitively and returned in
    lower case (``" Anomaly "`` -> ``"anomaly"``); other class names keep their case. A class name has
    1 to 64 printable characters (no control characters, tabs or line breaks).

    Parameters
    ----------
    name : str or Label
        The class name as typed by a user or passed by code.

    Returns
    -------
    str
        The name to store.
    """
    if isinstance(name, Label):
        return name.value
    if not isinstance(name, str):
        raise DataError(
            f"label {_short(name)} is a {type(name).__name__}, not a class name; pass a string such as 'anomaly'"
        )
    text = str.__str__(name).strip()
    if text.lower() in BUILTIN_LABELS:
        return text.lower()
    if not 1 <= len(text) <= MAX_LABEL_LENGTH:
        raise DataError(
            f"label {_short(name)} has {len(text)} characters after stripping; a class name has 1 to "
            f"{MAX_LABEL_LENGTH}, e.g. 'anomaly' or 'merger'"
        )
    if not text.isprintable():
        raise DataError(
            f"label {_short(name)} contains control or non-printable characters; use letters, digits, "
            "spaces and punctuation only"
        )
    return text


def check_ids(ids: Iterable[str] | str, *, allow_empty: bool = False) -> list[str]:
    """Return the object ids as a list of plain ``str`` without duplicates (first occurrence kept).

    A lone string is taken as one id, not as a sequence of characters. Ids are arbitrary non-empty
    strings (unicode, ``/``, HTML characters, white space are all kept exactly) except that they may not
    contain the NUL character. Numbers are refused rather than silently converted.
    """
    if isinstance(ids, str):
        ids = [ids]
    try:
        items = list(ids)
    except TypeError:
        raise DataError(
            f"ids must be a list of object id strings, got {type(ids).__name__}; pass e.g. ['J0001', 'J0002']"
        ) from None
    out: list[str] = []
    seen: set[str] = set()
    for item in items:
        if not isinstance(item, str) or not item or "\x00" in item:
            raise DataError(
                f"object id {_short(item)} is not a non-empty string without NUL characters; object ids are "
                "strings (convert numeric ids with str())"
            )
        text = item if type(item) is str else str.__str__(item)
        if text not in seen:
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise DataError(
                    f"object id {text!r} is not valid unicode (lone surrogate); fix the id in the catalogue"
                ) from None
            seen.add(text)
            out.append(text)
    if not out and not allow_empty:
        raise DataError("no object ids given; select at least one object before labelling")
    return out


def check_user(user: str) -> str:
    """Return the stripped user name, or raise :class:`DataError` if it is empty or not printable."""
    if not isinstance(user, str) or not user.strip():
        raise DataError(f"user {_short(user)} is not a name; pass who is labelling, e.g. user='alice'")
    text = str.__str__(user).strip()
    if len(text) > MAX_USER_LENGTH or not text.isprintable():
        raise DataError(
            f"user {_short(user)} must be at most {MAX_USER_LENGTH} printable characters; pass a short name"
        )
    return text


def check_optional_text(value: str | None, what: str) -> str | None:
    """Return ``value`` as a plain ``str`` (or ``None``); raise :class:`DataError` for other types."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise DataError(f"{what} {value!r} is a {type(value).__name__}; pass a string or None")
    return str.__str__(value)


def _short(value: object, limit: int = 60) -> str:
    """``repr`` of a value, cut to ``limit`` characters so an error message stays one readable line."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(str(value))} characters)"
