"""The answer a handler of the page returns (agent/app/status_page.py sends it)."""

TEXT = "text/plain; charset=utf-8"


class Response:
    """What a handler returns; ``StatusPage._send`` adds Content-Length, Date and ``Connection: close``.

    A response with a ``stream`` (an async callable(send), ``send(bytes)`` writing one
    chunk, raising ConnectionResetError once the client left) has no length: its body is what the stream sends until it returns (the
    ``/events`` stream, agent/app/web/views.py)."""

    __slots__ = ("status", "body", "content_type", "headers", "stream")

    def __init__(self, status: int, body: bytes, content_type: str = TEXT, headers=()) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = list(headers)
        self.stream = None


def _text(status: int, text: str, headers=()) -> Response:
    return Response(status, text.encode(), TEXT, headers)
