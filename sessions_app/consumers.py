"""The WebSocket of a listener: `/ws/<session_id>` (or `/ws` and a join message); and the
Browse tab's feed of session changes, `/ws/sessions` (SessionListConsumer, at the end).

On join: session_info, every final subtitle so far, then the session's live events.
Who may join is LISTEN_ACCESS's rule (transcriber_site.access): the session cookie says
who the visitor is, and `?key=` on the URL (or "key" in the join message) is the share key.
`ready` asks for the audio: the server makes a peer, offers, and the browser answers.
`publish` (an operator's, on a microphone session) sends the page's microphone the other
way: the browser offers, the server answers (sessions_app.microphone).
Wrong input gets an {"type": "error", "message": ...} and the socket stays usable.

Whatever a message does, the socket's resources (its group, its listener row, its peer
and audio track, its microphone and its claim on it) are released when the socket goes: `__call__` cleans up in a
`finally`, so even an error no handler expected cannot leave a peer behind. Messages
are bounded (WS_MAX_MESSAGE_BYTES, MAX_JSON_DEPTH) before they are parsed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from typing import Any
from urllib.parse import parse_qs

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.sdp import candidate_from_sdp
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from sessions_app import events, microphone
from sessions_app.models import ENDED, Listener, TranscriptionSession, TranscriptVersion
from sessions_app.webrtc import SERVER_ID, ListenerTrack, announce_public_ip, hub, peer_connection
from transcriber_site.access import listen_refusal, may_list, may_listen, may_operate
from transcriber_site.lib.http import TooDeep, parse_json, shown
from transcriber_site.lib.serving import WS_MAX_MESSAGE_BYTES

log = logging.getLogger(__name__)

MESSAGE_TYPES = ("join", "ready", "answer", "ice-candidate", "ping", "publish")
END_LINGER_SECS = 2.0  # after the end, the peer stays this long: the last audio is still on its way


class ProtocolError(Exception):
    """A message the protocol does not allow now; the text goes back as an error message."""


class Full(ProtocolError):
    """A limit is reached: the text goes back, then the socket is closed with LIMIT_CLOSE_CODE."""


LIMIT_CLOSE_CODE = 4429  # 4000-4999 are the application's; this one says "too many", as HTTP 429
sockets_by_address: Counter[str] = Counter()  # this process's open sockets, by client address


async def refuse_handshake(scope: Any, send: Any, status: int, sentence: str) -> None:
    """Refuse a WebSocket before accepting it: an HTTP answer with a JSON sentence where the server
    lets the application give one (uvicorn does), else a close (the server answers 403)."""
    if "websocket.http.response" in scope.get("extensions", {}):
        body = json.dumps({"error": sentence}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "websocket.http.response.start", "status": status, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:  # 4000 + the HTTP status: 4404, 4429
        await send({"type": "websocket.close", "code": 4000 + status, "reason": sentence[:120]})


def client_address(scope: Any) -> str:
    client = scope.get("client")  # uvicorn puts the proxy's X-Forwarded-For here for FORWARDED_ALLOW_IPS
    return str(client[0]) if client else "unknown"


async def admit_address(scope: Any, send: Any) -> str | None:
    """Count a socket against its address's MAX_SOCKETS_PER_ADDRESS (the address, to release), or refuse it (None)."""
    address, limit = client_address(scope), settings.MAX_SOCKETS_PER_ADDRESS
    if limit and sockets_by_address[address] >= limit:
        await refuse_handshake(
            scope,
            send,
            429,
            f"This address already has {limit} sockets open here (MAX_SOCKETS_PER_ADDRESS); close one first.",
        )
        return None
    sockets_by_address[address] += 1
    return address


def release_address(address: str | None) -> None:
    if address is None:
        return
    sockets_by_address[address] -= 1
    if sockets_by_address[address] <= 0:
        del sockets_by_address[address]


class ListenerCounts:
    """The Browse pages hear a session's listener count at most once per COUNT_PUSH_SECS from this process.

    A join or a leave marks the session; COUNT_PUSH_SECS later one COUNT query and one group
    send carry every change since, however many listeners came and went meanwhile.
    """

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Task[None]] = {}  # by session id: the push to come

    def changed(self, session_id: int) -> None:
        if session_id not in self.pending:
            self.pending[session_id] = asyncio.create_task(self._push(session_id), name=f"listener-count-{session_id}")

    async def _push(self, session_id: int) -> None:
        try:
            await asyncio.sleep(COUNT_PUSH_SECS)
        finally:
            del self.pending[session_id]  # a change from here on is counted by the next push
        try:
            counts = await database_sync_to_async(Listener.count_of)([session_id])
            await events.publish_listed_async(events.listener_count(session_id, counts[session_id]))
        except Exception:  # only news: the pages catch up at their next fetch of the list
            log.exception("session %s: could not push its listener count", session_id)

    async def close(self) -> None:
        tasks = list(self.pending.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


COUNT_PUSH_SECS = 0.5
listener_counts = ListenerCounts()


class CountedSocket(AsyncWebsocketConsumer):
    """A socket counted against MAX_SOCKETS_PER_ADDRESS, whose `release()` runs once however it ends."""

    address: str | None = None  # counted in sockets_by_address while open
    cleaned = False

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await asyncio.shield(self.clean_up())

    async def admitted(self) -> bool:
        """Count this socket against its address; False (the handshake refused with 429) when it is full."""
        self.address = await admit_address(self.scope, self.base_send)
        return self.address is not None

    async def clean_up(self) -> None:
        if self.cleaned:
            return
        self.cleaned = True
        release_address(self.address)
        await self.release()

    async def release(self) -> None:
        """What this socket holds besides its count."""


class SessionConsumer(CountedSocket):
    session_id: int | None = None
    pc: RTCPeerConnection | None = None
    track: ListenerTrack | None = None
    offered = False
    last_index = -1  # the last final subtitle sent, so that none is sent twice
    linger: asyncio.Task[None] | None = None
    publisher: microphone.Publisher | None = None  # this socket's microphone, while it sends one
    claimed = False  # this socket may be the session's publisher (in the database): release it when done

    async def connect(self) -> None:
        if not await self.admitted():
            return
        await self.accept()
        session_id = self.scope["url_route"]["kwargs"].get("session_id")
        if session_id is not None:
            await self.guarded(self.join, {"type": "join", "session_id": session_id})

    async def disconnect(self, code: int) -> None:
        await self.clean_up()

    async def release(self) -> None:
        if self.linger is not None:
            self.linger.cancel()
        steps = [self.close_peer(), self.stop_publishing()]
        if self.session_id is not None:
            # a row left behind (the database unavailable now) stops counting after LISTENER_STALE_SECS
            steps.append(self.forget_listener())
            steps.append(self.channel_layer.group_discard(events.group(self.session_id), self.channel_name))
        for step in steps:  # each one, whatever the one before did
            try:
                await step
            except Exception:
                log.exception("session %s: cleaning up a socket", self.session_id)

    async def forget_listener(self) -> None:
        """This socket's listener row goes, and the Browse pages hear the new count."""
        await database_sync_to_async(Listener.objects.filter(channel_name=self.channel_name).delete)()
        if self.session_id is not None:
            listener_counts.changed(self.session_id)

    # --- messages from the browser ------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None:
            await self.error("Messages must be JSON text, not binary frames.")
            return
        if len(text_data) > WS_MAX_MESSAGE_BYTES:  # uvicorn refuses these already; daphne does not
            await self.error(f"Messages are limited to {WS_MAX_MESSAGE_BYTES // 1024} KiB.")
            return
        try:
            message = parse_json(text_data)
        except TooDeep as exc:
            await self.error(str(exc))
            return
        except ValueError:
            await self.error("Messages must be JSON text.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.error('Messages must be JSON objects with a "type".')
            return
        handlers = {
            "join": self.join,
            "ready": self.ready,
            "answer": self.answer,
            "ice-candidate": self.ice_candidate,
            "ping": self.ping,
            "publish": self.publish,
        }
        handler = handlers.get(message["type"])
        if handler is None:
            await self.error(
                f"Unknown message type '{shown(message['type'])}'; expected one of {', '.join(MESSAGE_TYPES)}."
            )
            return
        await self.guarded(handler, message)

    async def guarded(self, handler: Any, message: dict[str, Any]) -> None:
        """Run a handler; a refusal goes back as its sentence, any other failure as a plain one."""
        try:
            await handler(message)
        except Full as exc:
            await self.error(str(exc))
            await self.close(code=LIMIT_CLOSE_CODE, reason=str(exc)[:120])
        except ProtocolError as exc:
            await self.error(str(exc))
        except Exception:
            log.exception("session %s: a %s message failed", self.session_id, message.get("type"))
            await self.error(f"The server could not handle this {message.get('type')} message; it has been logged.")

    async def join(self, message: dict[str, Any]) -> None:
        raw = message.get("session_id")
        if self.session_id is not None:
            raise ProtocolError(f"This socket has already joined session {self.session_id}.")
        if isinstance(raw, bool) or not isinstance(raw, int | str) or not str(raw).isdigit():
            raise ProtocolError('join needs "session_id", the number of a session.')
        session_id = int(raw)
        user = self.scope.get("user") or AnonymousUser()  # a session cookie signs an operator in
        if refusal := await database_sync_to_async(listen_refusal)(user):
            raise ProtocolError(refusal)
        session = await database_sync_to_async(TranscriptionSession.objects.filter(pk=session_id).first)()
        key = message.get("key") or self.query_key()
        # one this listener may not see is answered as a missing one: ids cannot be probed
        if session is None or not await database_sync_to_async(may_listen)(user, session.share_key, key):
            raise ProtocolError(f"There is no session {session_id}.")
        if session.state in ENDED:
            raise ProtocolError(
                f"Session {session_id} has ended ({session.state}); its transcript is at "
                f"/api/sessions/{session_id}/transcript."
            )
        limit = settings.MAX_LISTENERS_PER_SESSION
        if limit and await database_sync_to_async(Listener.live().filter(session=session).count)() >= limit:
            raise Full(
                f"Session {session_id} has its most listeners, {limit} (MAX_LISTENERS_PER_SESSION); try again later."
            )
        # the row first: if the database refuses it, nothing is joined and the join can be sent again
        await database_sync_to_async(Listener.objects.create)(
            session=session, channel_name=self.channel_name, server_id=SERVER_ID
        )
        listener_counts.changed(session_id)
        self.session_id = session_id
        await self.channel_layer.group_add(events.group(session_id), self.channel_name)
        info, finals = await database_sync_to_async(self._history)(session)
        await self.send_json({"type": "session_info", "session": info, "server_time": time.time()})
        for event in finals:
            await self.forward_subtitle({**event, "replay": True})  # said before this listener came

    def query_key(self) -> str | None:
        """The share key of `/ws/<id>?key=<key>`, the share link's key (LISTEN_ACCESS=link)."""
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("key")
        return values[0] if values else None

    @staticmethod
    def _history(session: TranscriptionSession) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        session.refresh_from_db()
        live = session.segments.filter(version=TranscriptVersion.LIVE)  # what listeners saw, not the offline pass
        return session.to_dict(), [segment.to_event() for segment in live]

    async def ready(self, message: dict[str, Any]) -> None:
        if self.session_id is None:
            raise ProtocolError("Join a session before asking for its audio.")
        if self.pc is not None:
            raise ProtocolError("ready was already received: this socket has its audio; answer the offer.")
        session = await database_sync_to_async(
            TranscriptionSession.objects.select_related("media").filter(pk=self.session_id).first
        )()
        if session is None or session.state in ENDED or session.media is None:
            raise ProtocolError(f"Session {self.session_id} has ended; there is no audio to send.")
        self.pc = pc = peer_connection()
        self.track = hub.listen(session.pk, session.clock(), session.media.path)
        pc.addTransceiver(self.track, direction="sendonly")

        @pc.on("connectionstatechange")
        async def _state() -> None:
            if pc.connectionState == "failed" and self.pc is pc:
                log.info("session %s: a listener's peer failed", self.session_id)
                await self.close_peer()
                await self.forget_listener()
                await self.error("The audio connection failed; send ready to try again.")

        await pc.setLocalDescription(await pc.createOffer())
        self.offered = True
        sdp = announce_public_ip(pc.localDescription.sdp, settings.PUBLIC_IP)
        await self.send_json({"type": "offer", "sdp": sdp})

    async def answer(self, message: dict[str, Any]) -> None:
        if self.pc is None or not self.offered:
            raise ProtocolError("An answer needs an offer first: send ready.")
        if self.pc.remoteDescription is not None:
            raise ProtocolError("The offer was already answered.")
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise ProtocolError('answer needs "sdp", the session description of the answer.')
        try:
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
        except Exception as exc:  # aiortc raises ValueError and others on a bad description
            raise ProtocolError(f"The answer's SDP was refused: {exc}") from None

    async def ice_candidate(self, message: dict[str, Any]) -> None:
        if message.get("target") == "publish":  # the microphone's peer, not the listener's
            await self.publish_candidate(message)
            return
        if self.pc is None:
            raise ProtocolError("ICE candidates need a peer first: send ready.")
        candidate = browser_candidate(message)
        if candidate is None:
            return
        try:
            parsed = candidate_from_sdp(candidate["candidate"].removeprefix("candidate:"))
            parsed.sdpMid = candidate.get("sdpMid")
            parsed.sdpMLineIndex = candidate.get("sdpMLineIndex")
            await self.pc.addIceCandidate(parsed)
        except Exception as exc:
            raise ProtocolError(f"The ICE candidate was refused: {exc}") from None

    # --- the operator's microphone -----------------------------------------------------------------

    async def publish(self, message: dict[str, Any]) -> None:
        """The page's microphone for this microphone session: claim it, answer the browser's offer.

        A refusal is an error with "about": "publish" (and "retry": true while another
        connection holds the microphone, which a reconnecting page waits out).
        """
        try:
            await self._publish(message)
        except microphone.Refused as exc:
            await self.send_json({"type": "error", "message": str(exc), "about": "publish", "retry": exc.retry})
        except Exception:
            log.exception("session %s: a publish message failed", self.session_id)
            sentence = "The server could not take the microphone; it has been logged."
            await self.send_json({"type": "error", "message": sentence, "about": "publish", "retry": False})

    async def _publish(self, message: dict[str, Any]) -> None:
        if self.session_id is None:
            raise microphone.Refused("Join the microphone session before sending it your microphone.")
        sdp = message.get("sdp")
        if not isinstance(sdp, str) or not sdp.strip():
            raise microphone.Refused('publish needs "sdp", the session description of the browser\'s offer.')
        user = self.scope.get("user") or AnonymousUser()
        if not await database_sync_to_async(may_operate)(user):
            raise microphone.Refused("Only an operator may send a microphone to a session; sign in as one.")
        await self.stop_publishing(release=False)  # a new offer from this socket replaces its peer; the claim stays
        self.claimed = True  # from here on, whatever fails lets go of the claim
        try:
            session = await database_sync_to_async(microphone.claim)(self.session_id, self.channel_name)
            assert session.media is not None
            self.publisher = publisher = microphone.Publisher(
                session.pk, session.media.path, session.clock(), lambda reason: self.publisher_ended(publisher, reason)
            )
            try:
                answer = await publisher.answer(sdp, settings.PUBLIC_IP)
            except Exception as exc:  # aiortc raises ValueError and others on a bad description
                raise microphone.Refused(f"The microphone's offer was refused: {exc}") from None
        except BaseException:
            await self.stop_publishing()
            raise
        log.info("session %s: an operator's microphone is connecting", self.session_id)
        await self.send_json({"type": "publish-answer", "sdp": answer})

    async def publish_candidate(self, message: dict[str, Any]) -> None:
        if self.publisher is None:
            return  # a refused or ended publish's late candidates: the refusal has been said already
        candidate = browser_candidate(message)
        if candidate is None:
            return
        try:
            await self.publisher.add_candidate(candidate)
        except Exception as exc:
            raise ProtocolError(f"The ICE candidate was refused: {exc}") from None

    async def publisher_ended(self, publisher: microphone.Publisher, reason: str | None) -> None:
        """Its task ended by itself: the socket's own loop closes it (a message to this channel)."""
        try:
            await self.channel_layer.send(
                self.channel_name, {"type": "publish.ended", "publisher": publisher.id, "reason": reason}
            )
        except Exception:  # the channel layer is down: the socket's close lets go of it
            log.exception("session %s: could not report the microphone's end", self.session_id)

    async def publish_ended(self, event: dict[str, Any]) -> None:
        if self.publisher is None or self.publisher.id != event["publisher"]:
            return  # replaced or closed meanwhile
        await self.stop_publishing()
        await self.send_json({"type": "publish-end", "reason": event["reason"]})

    async def stop_publishing(self, release: bool = True) -> None:
        """Close this socket's microphone, and let go of the session's claim (even if closing failed)."""
        publisher, self.publisher = self.publisher, None
        try:
            if publisher is not None:
                await publisher.close()
        finally:
            if release and self.claimed and self.session_id is not None:
                self.claimed = False
                await database_sync_to_async(microphone.release)(self.session_id, self.channel_name)

    async def ping(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "pong", "t": message.get("t"), "server_time": time.time()})

    # --- events of the session's group ------------------------------------------------------------

    async def session_subtitle(self, event: dict[str, Any]) -> None:
        await self.forward_subtitle(event)

    async def forward_subtitle(self, event: dict[str, Any]) -> None:
        index = event.get("index")
        if index is not None:
            if index <= self.last_index:
                return  # sent with the history already
            self.last_index = index
        await self.send_json({**event, "type": "subtitle"})

    async def session_status(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "status", "server_time": time.time()})

    async def session_clock(self, event: dict[str, Any]) -> None:
        hub.follow(event["session_id"], event)
        if self.publisher is not None:
            self.publisher.follow(event)
            if self.publisher.done:  # the input ended (End, or the session is over): nothing more to write
                await self.stop_publishing()
                await self.send_json({"type": "publish-end", "reason": None})
        await self.send_json({**event, "type": "clock", "server_time": time.time()})

    async def session_end(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "end"})
        if self.pc is not None and self.linger is None:
            self.linger = asyncio.create_task(self._close_peer_later(), name=f"linger-{self.channel_name}")

    async def session_transcript(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "transcript"})

    async def session_speakers(self, event: dict[str, Any]) -> None:
        await self.send_json({**event, "type": "speakers"})

    async def _close_peer_later(self) -> None:
        await asyncio.sleep(END_LINGER_SECS)
        await self.close_peer()

    # --- helpers ---------------------------------------------------------------------------------------

    async def send_json(self, data: dict[str, Any]) -> None:
        try:
            await self.send(text_data=json.dumps(data))
        except (OSError, RuntimeError):
            # The browser has gone (uvicorn raises ClientDisconnected, an OSError, or a
            # RuntimeError once the socket is closed); the disconnect and its cleanup come next.
            log.debug("session %s: a message to a closed socket was dropped", self.session_id)

    async def error(self, message: str) -> None:
        await self.send_json({"type": "error", "message": message})

    async def close_peer(self) -> None:
        pc, track = self.pc, self.track
        self.pc, self.track, self.offered = None, None, False
        if track is not None:
            await hub.release(track)
        if pc is not None:
            await pc.close()
            hub.peers.discard(pc)


def browser_candidate(message: dict[str, Any]) -> dict[str, Any] | None:
    """The ICE candidate of an ice-candidate message, or None for the end of the browser's candidates."""
    candidate = message.get("candidate")
    if candidate is None or (isinstance(candidate, dict) and not candidate.get("candidate")):
        return None
    if not isinstance(candidate, dict) or not isinstance(candidate.get("candidate"), str):
        raise ProtocolError(
            'ice-candidate needs "candidate": {"candidate": "...", "sdpMid": ..., "sdpMLineIndex": ...}.'
        )
    return candidate


class SessionListConsumer(CountedSocket):
    """`/ws/sessions`: the Browse tab hears of session changes instead of polling the list.

    What it hears is what the list shows this visitor (transcriber_site.access): operators
    get cards with the operator's fields (group "sessions-operators"), visitors who may list
    sessions the listeners' cards ("sessions"); under LISTEN_ACCESS=link a visitor joins no
    group and hears nothing, as the list shows them nothing; under `operators` a visitor's
    handshake is refused with the list's 401 sentence. The socket first says
    {"type": "subscribed", "listed": true|false}; the page then fetches the list once, and
    {"type": "session", "session": {...}} (created, or its state changed) and
    {"type": "count", "id", "client_count"} keep its cards. `ping` gets `pong`.
    """

    group: str | None = None
    joined_at = 0.0  # time.monotonic() of the last group_add

    async def connect(self) -> None:
        if not await self.admitted():
            return
        refusal, group = await database_sync_to_async(self.access)(self.scope.get("user") or AnonymousUser())
        if refusal is not None:
            await refuse_handshake(self.scope, self.base_send, 401, refusal)
            return
        await self.accept()
        if group is not None:
            await self.channel_layer.group_add(group, self.channel_name)
            self.group, self.joined_at = group, time.monotonic()
        await self.send_frame(json.dumps({"type": "subscribed", "listed": group is not None}))

    @staticmethod
    def access(user: Any) -> tuple[str | None, str | None]:
        """(the refusal, if this visitor may not list sessions at all; the group whose cards they may see)."""
        if refusal := listen_refusal(user):
            return refusal, None
        if may_operate(user):
            return None, events.OPERATORS_GROUP
        return None, events.LISTERS_GROUP if may_list(user) else None

    async def disconnect(self, code: int) -> None:
        await self.clean_up()

    async def release(self) -> None:
        if self.group is not None:
            try:
                await self.channel_layer.group_discard(self.group, self.channel_name)
            except Exception:  # the channel layer is down: its group entry expires by itself
                log.exception("could not take a Browse page out of %s", self.group)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        message: Any = None
        if text_data is not None and len(text_data) <= FEED_MAX_MESSAGE_BYTES:
            with contextlib.suppress(ValueError):  # not JSON: answered as anything else it does not take
                message = parse_json(text_data)
        if isinstance(message, dict) and message.get("type") == "ping":
            await self.send_frame(json.dumps({"type": "pong", "t": message.get("t"), "server_time": time.time()}))
            if self.group is not None and time.monotonic() - self.joined_at > FEED_REJOIN_SECS:
                # channels_redis forgets a group's member after a day (group_expiry): a page open for days stays in
                await self.channel_layer.group_add(self.group, self.channel_name)
                self.joined_at = time.monotonic()
        else:
            await self.send_frame(json.dumps({"type": "error", "message": FEED_ONLY_PING}))

    async def sessions_push(self, event: dict[str, Any]) -> None:
        await self.send_frame(event["text"])  # made once for every page (sessions_app.events)

    async def send_frame(self, text: str) -> None:
        try:
            await self.send(text_data=text)
        except (OSError, RuntimeError):  # the browser has gone; the disconnect comes next
            log.debug("a Browse page's message to a closed socket was dropped")


FEED_MAX_MESSAGE_BYTES = 1024
FEED_REJOIN_SECS = 3600.0
FEED_ONLY_PING = 'This socket only sends session changes; the only message it takes is {"type": "ping"}.'
