"""MAX_UPLOAD_SIZE_MB holds at the ASGI edge, whatever the client declares."""

from __future__ import annotations

import http.client
import json
import socket

import pytest
from asgiref.testing import ApplicationCommunicator

from transcriber_site.lib.asgi import BodySizeLimit
from transcriber_site.testing import LiveServer, tone, write_audio

LIMIT = 1000


class Recorder:
    """An inner app that reads the whole body and answers 200 with its length."""

    def __init__(self) -> None:
        self.called = False

    async def __call__(self, scope, receive, send):
        self.called = True
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})


def scope(headers: list[tuple[bytes, bytes]]) -> dict:
    return {"type": "http", "method": "POST", "path": "/api/media/upload", "headers": headers}


async def run(app, scope, chunks: list[bytes]) -> list[dict]:
    communicator = ApplicationCommunicator(app, scope)
    for i, chunk in enumerate(chunks):
        await communicator.send_input({"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1})
    messages = [await communicator.receive_output(timeout=5)]
    while messages[-1]["type"] != "http.response.body" or messages[-1].get("more_body"):
        messages.append(await communicator.receive_output(timeout=5))
    await communicator.wait(timeout=5)
    return messages


async def test_a_declared_length_over_the_limit_is_refused_before_the_body_is_read():
    inner = Recorder()
    app = BodySizeLimit(inner, LIMIT, "too large")

    start, body = await run(app, scope([(b"content-length", b"5000000000")]), [b""])

    assert start["status"] == 413
    assert json.loads(body["body"]) == {"error": "too large"}
    assert not inner.called


async def test_a_body_that_outgrows_a_small_declared_length_is_cut_off():
    app = BodySizeLimit(Recorder(), LIMIT, "too large")

    start, _ = await run(app, scope([(b"content-length", b"10")]), [b"x" * 600, b"x" * 600, b"x" * 600])

    assert start["status"] == 413


async def test_a_chunked_body_without_a_length_is_cut_off_at_the_limit():
    app = BodySizeLimit(Recorder(), LIMIT, "too large")

    start, _ = await run(app, scope([(b"transfer-encoding", b"chunked")]), [b"x" * 400] * 5)

    assert start["status"] == 413


async def test_a_body_within_the_limit_passes_through():
    app = BodySizeLimit(Recorder(), LIMIT, "too large")

    start, body = await run(app, scope([(b"content-length", b"900")]), [b"x" * 450, b"x" * 450])

    assert start["status"] == 200
    assert body["body"] == b"900"


def multipart(name: str, data: bytes, boundary: str = "XyZ") -> bytes:
    return (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("live"), env={"MAX_UPLOAD_SIZE_MB": "1"}) as live:
        yield live


def chunked_post(port: int, body: bytes, chunk: int = 64 * 1024) -> tuple[int, dict]:
    """POST `body` with Transfer-Encoding: chunked, i.e. without declaring any length."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(
            b"POST /api/media/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n"
        )
        for i in range(0, len(body), chunk):
            part = body[i : i + chunk]
            s.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        response = http.client.HTTPResponse(s)
        response.begin()
        return response.status, json.loads(response.read())


@pytest.mark.slow
def test_the_real_server_refuses_a_chunked_upload_over_the_limit(server, tmp_path):
    data = write_audio(tmp_path / "big.wav", tone(60.0)).read_bytes()  # about 10 MB

    status, body = chunked_post(server.port, multipart("big.wav", data))

    assert status == 413
    assert body == {"error": "The upload is larger than the 1 MB limit (MAX_UPLOAD_SIZE_MB)."}
    assert [p.name for p in server.media_dir.iterdir() if p.name != ".lock"] == []


@pytest.mark.slow
def test_the_real_server_refuses_a_declared_upload_over_the_limit(server, tmp_path):
    data = multipart("big.wav", write_audio(tmp_path / "big.wav", tone(60.0)).read_bytes())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    connection.request(
        "POST", "/api/media/upload", body=data, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    response = connection.getresponse()

    assert response.status == 413
    assert [p.name for p in server.media_dir.iterdir() if p.name != ".lock"] == []


@pytest.mark.slow
def test_the_real_server_accepts_an_upload_within_the_limit(server, tmp_path):
    data = multipart("small.mp3", write_audio(tmp_path / "small.mp3", tone(3.0)).read_bytes())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    connection.request(
        "POST", "/api/media/upload", body=data, headers={"Content-Type": "multipart/form-data; boundary=XyZ"}
    )
    response = connection.getresponse()

    assert response.status == 201
    assert json.loads(response.read())["filename"] == "small.mp3"


@pytest.mark.slow
def test_a_chunked_upload_within_the_limit_is_asked_for_its_length(server, tmp_path):
    data = multipart("small.mp3", write_audio(tmp_path / "small.mp3", tone(3.0)).read_bytes())

    status, body = chunked_post(server.port, data)

    assert status == 411
    assert body == {"error": "Send the upload with a Content-Length header; chunked uploads are not accepted."}
