"""MAX_UPLOAD_SIZE_MB holds at the ASGI edge, whatever the client declares."""

from __future__ import annotations

import http.client
import io
import json
import socket
import wave
from pathlib import Path

import numpy as np
import pytest
from asgiref.testing import ApplicationCommunicator

from transcriber_site.access import SIGN_IN_TO_OPERATE
from transcriber_site.lib.asgi import BodySizeLimit
from transcriber_site.testing import LiveServer, multipart, tone, write_audio

LIMIT = 1000
MIB = 1024 * 1024


def leftovers(media_dir: Path) -> list[str]:
    """Every file under MEDIA_DIR but its lock file: partial files and temporary uploads included."""
    return [p.relative_to(media_dir).as_posix() for p in media_dir.rglob("*") if p.is_file() and p.name != ".lock"]


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


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(tmp_path_factory.mktemp("live"), env={"MAX_UPLOAD_SIZE_MB": "1"}) as live:
        yield live


def chunked_post(server: LiveServer, body: bytes, chunk: int = 64 * 1024) -> tuple[int, dict]:
    """POST `body` with Transfer-Encoding: chunked, i.e. without declaring any length."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(
            b"POST /api/media/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
            + f"Authorization: {server.operator_headers['Authorization']}\r\n".encode()
            + b"Content-Type: multipart/form-data; boundary=XyZ\r\n\r\n"
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

    status, body = chunked_post(server, multipart("big.wav", data))

    assert status == 413
    assert body == {"error": "The upload is larger than the 1 MB limit (MAX_UPLOAD_SIZE_MB)."}
    assert leftovers(server.media_dir) == []


@pytest.mark.slow
def test_the_real_server_refuses_a_declared_upload_over_the_limit(server, tmp_path):
    data = multipart("big.wav", write_audio(tmp_path / "big.wav", tone(60.0)).read_bytes())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    connection.request(
        "POST",
        "/api/media/upload",
        body=data,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ", **server.operator_headers},
    )
    response = connection.getresponse()

    assert response.status == 413
    assert leftovers(server.media_dir) == []


@pytest.mark.slow
def test_the_real_server_accepts_an_upload_within_the_limit(server, tmp_path):
    data = multipart("small.mp3", write_audio(tmp_path / "small.mp3", tone(3.0)).read_bytes())
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    connection.request(
        "POST",
        "/api/media/upload",
        body=data,
        headers={"Content-Type": "multipart/form-data; boundary=XyZ", **server.operator_headers},
    )
    response = connection.getresponse()

    assert response.status == 201
    assert json.loads(response.read())["filename"] == "small.mp3"


@pytest.mark.slow
def test_a_chunked_upload_within_the_limit_is_asked_for_its_length(server, tmp_path):
    data = multipart("small.mp3", write_audio(tmp_path / "small.mp3", tone(3.0)).read_bytes())

    status, body = chunked_post(server, data)

    assert status == 411
    assert body == {"error": "Send the upload with a Content-Length header; chunked uploads are not accepted."}


def wav_of_exactly(size: int) -> bytes:
    """A 16 kHz mono wav of exactly `size` bytes (44 of header, the rest samples)."""
    count = (size - 44) // 2
    samples = (np.sin(np.arange(count) * 2 * np.pi * 440 / 16000) * 10000).astype("<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.tobytes())
    data = buffer.getvalue()
    assert len(data) == size
    return data


def form(file: bytes, boundary: str, note: str | None = None) -> bytes:
    """A multipart body with the file and, when given, a text field before it."""
    field = f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n{note}\r\n'.encode() if note else b""
    return field + multipart("exact.wav", file, boundary)


FRAMINGS = {
    "plain": {"boundary": "XyZ"},
    "long boundary and a text field": {"boundary": "b" * 70, "note": "n" * 100_000},
}


@pytest.mark.django_db
@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
def test_a_file_of_exactly_the_limit_is_accepted_whatever_the_framing(operator_client, settings, framing):
    settings.MAX_UPLOAD_SIZE_MB = 1
    body = form(wav_of_exactly(MIB), **framing)

    response = operator_client.post(
        "/api/media/upload", data=body, content_type=f"multipart/form-data; boundary={framing['boundary']}"
    )

    assert response.status_code == 201, response.content
    assert response.json()["duration_secs"] == pytest.approx((MIB - 44) / 2 / 16000, abs=0.001)


@pytest.mark.django_db
@pytest.mark.parametrize("framing", FRAMINGS.values(), ids=FRAMINGS.keys())
def test_a_file_one_byte_over_the_limit_is_refused_whatever_the_framing(operator_client, settings, media_dir, framing):
    settings.MAX_UPLOAD_SIZE_MB = 1
    body = form(wav_of_exactly(MIB) + b"\0", **framing)

    response = operator_client.post(
        "/api/media/upload", data=body, content_type=f"multipart/form-data; boundary={framing['boundary']}"
    )

    assert response.status_code == 413
    assert response.json() == {"error": "The upload is larger than the 1 MB limit (MAX_UPLOAD_SIZE_MB)."}
    assert leftovers(media_dir) == []


def post_multipart(
    server: LiveServer, body: bytes, boundary: str = "XyZ", as_operator: bool = True
) -> tuple[int, dict]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    connection.request(
        "POST", "/api/media/upload", body=body, headers=headers | (server.operator_headers if as_operator else {})
    )
    response = connection.getresponse()
    return response.status, json.loads(response.read())


@pytest.mark.slow
def test_the_real_server_takes_a_file_of_exactly_the_limit_and_refuses_one_byte_more(server):
    exact = wav_of_exactly(MIB)

    accepted, media = post_multipart(server, multipart("exact.wav", exact))
    refused, error = post_multipart(server, multipart("over.wav", exact + b"\0"))

    assert accepted == 201, media
    assert media["size_bytes"] == MIB
    assert refused == 413
    assert error == {"error": "The upload is larger than the 1 MB limit (MAX_UPLOAD_SIZE_MB)."}
    assert [name for name in leftovers(server.media_dir) if name.startswith(".")] == []  # no partial files


@pytest.mark.slow
def test_a_request_with_no_sign_in_is_refused_before_its_body_is_spooled(server, tmp_path):
    small = multipart("small.wav", write_audio(tmp_path / "small.wav", tone(0.1)).read_bytes())  # 18 KB
    big = multipart("big.wav", write_audio(tmp_path / "big.wav", tone(1.0)).read_bytes())  # 176 KB
    before = leftovers(server.media_dir)

    small_status, small_error = post_multipart(server, small, as_operator=False)
    big_status, big_error = post_multipart(server, big, as_operator=False)

    assert (small_status, small_error["error"]) == (401, SIGN_IN_TO_OPERATE)  # Django read it, and refused
    assert big_status == 413  # refused at the door, before Django spooled a byte of it
    assert big_error == {
        "error": "Sign in as an operator to upload; a request without a sign-in may carry 64 KB at most."
    }
    assert leftovers(server.media_dir) == before
