"""Reading one JSON document strictly: what ``json.loads`` would accept silently or fail on with a raw error
(a key given twice, an integer too long to convert, nesting too deep) is a :class:`StrictJSONError` that says so.

Scan input and the service's request bodies are read the same way.
"""

from __future__ import annotations

import json
import sys
from typing import Any


class StrictJSONError(ValueError):
    """Valid JSON syntax that cannot be read safely; the message says what and how to fix it."""


def loads_strictly(text: str | bytes) -> Any:
    """``json.loads(text)``, refusing duplicate keys, integers too long to convert and nesting too deep.

    A syntax error is still a :class:`json.JSONDecodeError` (with its position).
    """
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKeyError as error:
        raise StrictJSONError(
            f"key {error.args[0]!r} appears twice in one object; JSON keeps only the last, so the first value "
            "would be lost: give each key once"
        ) from None
    except json.JSONDecodeError:
        raise
    except RecursionError:
        raise StrictJSONError("JSON nested too deeply to read") from None
    except ValueError:  # an integer longer than Python converts (sys.get_int_max_str_digits)
        raise StrictJSONError(
            f"holds an integer of more than {sys.get_int_max_str_digits()} digits, longer than can be read; "
            "write it as a string (in quotes)"
        ) from None


class _DuplicateKeyError(ValueError):
    """A JSON object names a key twice (``args[0]``)."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in pairs:
        if key in record:
            raise _DuplicateKeyError(key)
        record[key] = value
    return record
