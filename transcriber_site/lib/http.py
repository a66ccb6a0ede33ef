"""The JSON API's conventions: plain JSON bodies, errors as {"error": "<sentence>"}."""

from __future__ import annotations

import errno
import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.db import OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from transcriber_site.access import csrf_refusal, operator_refusal

log = logging.getLogger(__name__)

# No message of the protocol nests deeper than a few levels; json.loads would recurse
# until a RecursionError on ten thousand brackets.
MAX_JSON_DEPTH = 32
SHOWN_CHARS = 60  # of a client's value repeated in an error message
OUT_OF_SPACE = (errno.ENOSPC, errno.EDQUOT)
OUT_OF_SPACE_MESSAGE = "The server is out of disk space; nothing was saved. Try again once space is freed."


class ApiError(Exception):
    """Raised anywhere below a view to answer with `{"error": message}` and `status`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error(status: int, message: str) -> JsonResponse:
    return JsonResponse({"error": message}, status=status)


def shown(value: object) -> str:
    """A client's value as an error message repeats it: never more than SHOWN_CHARS of it."""
    text = str(value)
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + f"… ({len(text)} characters)"


_STRUCTURE = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]')


class TooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH; the message says so, for the client."""


def parse_json(text: str | bytes, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """json.loads for what clients send: TooDeep for JSON nested too deeply, ValueError for invalid JSON."""
    if isinstance(text, bytes):
        text = text.decode()  # UnicodeDecodeError is a ValueError
    depth = 0
    for match in _STRUCTURE.finditer(text):  # strings are matched whole, so their brackets do not count
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > max_depth:
                raise TooDeep(f"JSON nested deeper than {max_depth} levels is not accepted.")
        elif token in "]}":
            depth -= 1
    try:
        return json.loads(text)
    except RecursionError:  # the check above makes this unreachable; kept so no input ever escapes as one
        raise TooDeep(f"JSON nested deeper than {max_depth} levels is not accepted.") from None
    except ValueError:
        raise ValueError("The text is not valid JSON.") from None


def json_body(request: HttpRequest) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    try:
        body = request.body
    except RequestDataTooBig:
        raise ApiError(413, "The request body is too large for a JSON request.") from None
    if body and request.content_type != "application/json":
        # a form or text/plain POST is what another site's page can send without asking
        raise ApiError(415, "Send the request body as JSON, with Content-Type: application/json.")
    try:
        data = parse_json(body or b"{}")
    except TooDeep as exc:
        raise ApiError(400, str(exc)) from None
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return data


ViewResult = HttpResponse | dict[str, Any] | list[Any]


def api(
    *methods: str, operator: tuple[str, ...] = ()
) -> Callable[[Callable[..., ViewResult]], Callable[..., HttpResponse]]:
    """Make a JSON API view: allowed methods, JSON out, ApiError turned into its response.

    The methods in `operator` are operator actions: an anonymous caller gets 401, a user
    without the permission 403, and a cookie-signed-in one must pass the CSRF check
    (transcriber_site.access); the view does not run.

    A full disk (MEDIA_DIR or the temporary directory) answers 507 with a sentence,
    whichever step of the request ran out of space; a database that is locked or gone
    answers 503.
    """

    def decorate(view: Callable[..., ViewResult]) -> Callable[..., HttpResponse]:
        @csrf_exempt
        @functools.wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if request.method not in methods:
                response = error(405, f"{request.method} is not allowed here; use {' or '.join(methods)}.")
                response["Allow"] = ", ".join(methods)
                return response
            if request.method in operator:
                if refusal := operator_refusal(request):
                    return error(*refusal)
                if reason := csrf_refusal(request):
                    return error(403, reason)
            try:
                result = view(request, *args, **kwargs)
            except ApiError as exc:
                return error(exc.status, exc.message)
            except OperationalError as exc:  # SQLite locked past its timeout or its disk full, PostgreSQL gone
                log.error("%s %s: database unavailable: %s", request.method, request.path, exc)
                if "disk is full" in str(exc) or "No space left" in str(exc):
                    return error(507, OUT_OF_SPACE_MESSAGE)
                return error(503, "The database is busy or unreachable; try again in a moment.")
            except OSError as exc:
                if exc.errno not in OUT_OF_SPACE:
                    raise
                log.error("%s %s: out of disk space: %s", request.method, request.path, exc)
                return error(507, OUT_OF_SPACE_MESSAGE)
            if isinstance(result, HttpResponse):
                return result
            return JsonResponse(result, safe=False)

        return wrapper

    return decorate
