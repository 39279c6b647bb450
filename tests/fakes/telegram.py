"""A fake Telegram Bot API speaking the real wire format, for the real python-telegram-bot.

Point PTB at it with `base_url=f"{fake.url}/bot"` and `base_file_url=f"{fake.url}/file/bot"`.
Requests are form-encoded or multipart, as PTB sends them; answers are `{"ok": true, "result"}`
or `{"ok": false, "error_code", "description", "parameters"}`. The real limits are enforced:
4096 UTF-16 units of text after entity parsing, 64-byte callback data, Telegram's HTML subset,
and (when `rate_limits` is given) messages per chat and per second overall, answered with 429.
Tests push updates (`push_message`, `push_callback`, `push_reaction`) and read what the bot sent
per chat (`sent`, `wait_sent`).
"""

from __future__ import annotations

import asyncio
import html
import itertools
import json
import re
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import FakeServer

TOKEN = "123456789:AAFakeTelegramTokenForTests_0123456789"
BOT_ID = 123456789
BOT_USERNAME = "lugh_test_bot"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_CALLBACK_DATA = 64
_JSON_FIELDS = {"reply_markup", "allowed_updates", "commands", "entities", "reaction", "scope",
                "link_preview_options", "reply_parameters", "caption_entities"}  # fmt: skip
_SEND_METHODS = {"sendMessage", "sendDocument", "sendPhoto"}


# --- Telegram's HTML subset --------------------------------------------------------------------

class EntityParseError(ValueError):
    """The text is not valid Telegram HTML; the message is Telegram's own wording."""


_SIMPLE_TAGS = {"b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
                "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
                "del": "strikethrough", "tg-spoiler": "spoiler", "code": "code", "pre": "pre",
                "blockquote": "blockquote", "a": "text_link", "span": "spoiler",
                "tg-emoji": "custom_emoji"}  # fmt: skip
_TAG = re.compile(r"<(/?)([a-zA-Z][a-zA-Z0-9-]*)((?:\s+[a-zA-Z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s>\"']+))?)*)\s*>")
_ATTR = re.compile(r"([a-zA-Z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>\"']+)))?")
_ENTITY = re.compile(r"&(lt|gt|amp|quot|#[0-9]{1,7}|#x[0-9a-fA-F]{1,6});")


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Telegram's parse_mode=HTML: the plain text and its entities, or EntityParseError."""
    out: list[str] = []
    entities: list[dict[str, Any]] = []
    stack: list[tuple[str, int, dict[str, Any]]] = []
    pos = 0
    while pos < len(source):
        ch = source[pos]
        offset = len(source[:pos].encode())
        if ch == "&":
            m = _ENTITY.match(source, pos)
            if not m:
                raise EntityParseError(f"Can't parse entities: unsupported entity at byte offset {offset}")
            out.append(html.unescape(m.group(0)))
            pos = m.end()
        elif ch == "<":
            m = _TAG.match(source, pos)
            if not m:
                raise EntityParseError(f"Can't parse entities: unexpected character '<' at byte offset {offset}")
            closing, name, raw_attrs = m.group(1) == "/", m.group(2).lower(), m.group(3)
            at = utf16_len("".join(out))
            if closing:
                if not stack or stack[-1][0] != name:
                    raise EntityParseError(
                        f"Can't parse entities: unexpected end tag at byte offset {offset}")
                _, start, entity = stack.pop()
                if entity["type"] == "pre_language":  # <pre><code class="language-x"> is one entity
                    stack[-1][2]["language"] = entity["language"]
                elif at > start:
                    entities.append({**entity, "offset": start, "length": at - start})
            else:
                entity = _open_tag(name, raw_attrs, stack, offset)
                stack.append((name, at, entity))
            pos = m.end()
        else:
            if ch == ">":
                raise EntityParseError(f"Can't parse entities: unexpected character '>' at byte offset {offset}")
            out.append(ch)
            pos += 1
    if stack:
        raise EntityParseError(
            f"Can't parse entities: can't find end tag corresponding to start tag \"{stack[-1][0]}\"")
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return "".join(out), entities


def _open_tag(name: str, raw_attrs: str, stack: list, offset: int) -> dict[str, Any]:
    if name not in _SIMPLE_TAGS:
        raise EntityParseError(f"Can't parse entities: unsupported start tag \"{name}\" at byte offset {offset}")
    attrs = {m.group(1).lower(): next((g for g in m.groups()[1:] if g is not None), "")
             for m in _ATTR.finditer(raw_attrs)}  # fmt: skip
    inside = [s[0] for s in stack]
    if inside and inside[-1] in ("code", "pre") and not (name == "code" and inside[-1] == "pre"):
        raise EntityParseError(f"Can't parse entities: unexpected start tag \"{name}\" inside code at byte offset {offset}")
    if name == "blockquote" and "blockquote" in inside:
        raise EntityParseError(f"Can't parse entities: nested blockquote at byte offset {offset}")
    entity: dict[str, Any] = {"type": _SIMPLE_TAGS[name]}
    if name == "span" and attrs.get("class") != "tg-spoiler":
        raise EntityParseError(f"Can't parse entities: tag \"span\" must have class \"tg-spoiler\" at byte offset {offset}")
    if name == "a":
        if not attrs.get("href"):
            raise EntityParseError(f"Can't parse entities: tag \"a\" must have attribute \"href\" at byte offset {offset}")
        entity["url"] = html.unescape(attrs["href"])
    if name == "code" and inside and inside[-1] == "pre" and attrs.get("class", "").startswith("language-"):
        entity = {"type": "pre_language", "language": attrs["class"].removeprefix("language-")}
    if name == "blockquote" and "expandable" in attrs:
        entity["type"] = "expandable_blockquote"
    if name == "tg-emoji":
        if not attrs.get("emoji-id"):
            raise EntityParseError(f"Can't parse entities: tag \"tg-emoji\" must have attribute \"emoji-id\" at byte offset {offset}")
        entity["custom_emoji_id"] = attrs["emoji-id"]
    return entity


# --- the server ----------------------------------------------------------------------------------

@dataclass
class RateLimits:
    """Telegram's flood limits: messages per second in one chat, and overall."""

    per_chat_per_s: float = 1.0
    overall_per_s: float = 30.0


@dataclass
class SentMessage:
    chat_id: int
    message_id: int
    text: str  # the plain text after entity parsing (the caption for files)
    source: str  # the text as the bot sent it
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    method: str
    entities: list[dict[str, Any]] = field(default_factory=list)
    document: bytes | None = None
    filename: str | None = None
    edits: int = 0
    at: float = 0.0
    silent: bool = False  # sent with disable_notification: no sound on the phone


@dataclass
class _Failure:
    method: str
    status: int
    description: str
    retry_after: int | None
    times: int
    chat_id: int | None
    delay_s: float = 0.0
    text: str | None = None


class FakeTelegram(FakeServer):
    """The Bot API for one bot (`token`), one owner and any number of chats."""

    def __init__(self, token: str = TOKEN, rate_limits: RateLimits | None = None) -> None:
        self.token = token
        self.rate_limits = rate_limits
        self.messages: dict[int, list[SentMessage]] = defaultdict(list)  # by chat, in send order
        self.answered_callbacks: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.rate_limited = 0  # 429s the fake's own flood control answered
        self.files: dict[str, tuple[str, bytes]] = {}  # file_id → (file_path, content)
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
        self._failures: list[_Failure] = []
        self._sent_times: dict[int, deque[float]] = defaultdict(deque)
        self._all_times: deque[float] = deque()
        self._changed = threading.Condition()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._update_waiters: set[asyncio.Event] = set()
        self._closing = False  # set by stop(): a long poll in progress returns at once
        super().__init__([
            Route("/bot{token}/{method}", self._api, methods=["GET", "POST"]),
            Route("/file/bot{token}/{path:path}", self._download, methods=["GET"]),
        ])  # fmt: skip

    def _record(self, request: Any) -> None:  # FakeServer's hook: wake whoever waits on requests
        super()._record(request)
        with self._changed:
            self._changed.notify_all()

    # --- what tests do --------------------------------------------------------------------------

    def fail(self, method: str, status: int = 429, *, retry_after: int | None = 1,
             description: str | None = None, times: int = 1, chat_id: int | None = None) -> None:
        """The next `times` calls of `method` (to `chat_id`, if given) fail with `status`."""
        if description is None:
            description = (f"Too Many Requests: retry after {retry_after}" if status == 429
                           else "Bad Request: chat not found")  # fmt: skip
        with self._changed:
            self._failures.append(_Failure(method, status, description,
                                           retry_after if status == 429 else None, times, chat_id))

    def delay(self, method: str, seconds: float, *, times: int = 1, chat_id: int | None = None,
              text: str | None = None) -> None:
        """The next `times` calls of `method` (with this `text`, if given) succeed only after
        `seconds`: a slow Telegram, or a call in flight when the test stops or kills a client."""
        with self._changed:
            self._failures.append(_Failure(method, 0, "", None, times, chat_id, seconds, text))

    def received(self, method: str, text: str) -> bool:
        """Whether a call of `method` with this `text` has reached the server (answered or not)."""
        return any(f"text={quote_plus(text)}".encode() in r.body for r in self.requests_to(f"/{method}"))

    def push_message(self, chat_id: int, text: str | None = None, *, user_id: int | None = None,
                     edited: bool = False, forwarded: bool = False, chat_type: str = "private",
                     **extra: Any) -> dict[str, Any]:
        """An incoming message (or `edited_message`); `extra` adds fields such as `voice`."""
        user_id = user_id or chat_id
        message: dict[str, Any] = {
            "message_id": next(self._message_ids[chat_id]), "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type, **({"first_name": "Owner"} if chat_type == "private" else {"title": "Group"})},
            "from": {"id": user_id, "is_bot": False, "first_name": "Owner"},
        }  # fmt: skip
        if text is not None:
            message["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
        if edited:
            message["edit_date"] = int(time.time())
        if forwarded:
            message["forward_origin"] = {"type": "user", "date": int(time.time()),
                                         "sender_user": {"id": 42, "is_bot": False, "first_name": "Other"}}
        message.update(extra)
        return self.push_update({"edited_message" if edited else "message": message})

    def push_voice(self, chat_id: int, content: bytes, duration: int = 3, **kw: Any) -> dict[str, Any]:
        file_id = self.add_file(content, f"voice/file_{len(self.files) + 1}.oga")
        voice = {"file_id": file_id, "file_unique_id": f"u{file_id}", "duration": duration,
                 "mime_type": "audio/ogg", "file_size": len(content)}
        return self.push_message(chat_id, voice=voice, **kw)

    def push_photo(self, chat_id: int, content: bytes, caption: str | None = None, **kw: Any) -> dict[str, Any]:
        file_id = self.add_file(content, f"photos/file_{len(self.files) + 1}.jpg")
        small = self.add_file(content[: max(1, len(content) // 10)], f"photos/{file_id}_small.jpg")
        sizes = [{"file_id": small, "file_unique_id": f"u{small}", "width": 90, "height": 90},
                 {"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 1280,
                  "height": 960, "file_size": len(content)}]  # fmt: skip
        return self.push_message(chat_id, photo=sizes, **({"caption": caption} if caption else {}), **kw)

    def push_document(self, chat_id: int, content: bytes, filename: str,
                      mime_type: str = "application/octet-stream", **kw: Any) -> dict[str, Any]:
        file_id = self.add_file(content, f"documents/{len(self.files) + 1}/{filename}")
        document = {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_name": filename,
                    "mime_type": mime_type, "file_size": len(content)}
        return self.push_message(chat_id, document=document, **kw)

    def push_callback(self, chat_id: int, message_id: int, data: str, user_id: int | None = None) -> dict[str, Any]:
        user = {"id": user_id or chat_id, "is_bot": False, "first_name": "Owner"}
        message = self._find(chat_id, message_id)
        shown = {"message_id": message_id, "date": int(time.time()),
                 "chat": {"id": chat_id, "type": "private"}, "text": message.text if message else "",
                 "from": {"id": BOT_ID, "is_bot": True, "first_name": "Lugh"}}  # fmt: skip
        if message and message.reply_markup:
            shown["reply_markup"] = message.reply_markup
        query = {"id": str(next(self._update_ids) * 1000), "from": user, "message": shown,
                 "chat_instance": str(chat_id), "data": data}
        return self.push_update({"callback_query": query})

    def push_reaction(self, chat_id: int, message_id: int, emoji: str, user_id: int | None = None,
                      old: str | None = None) -> dict[str, Any]:
        reaction = {"chat": {"id": chat_id, "type": "private"}, "message_id": message_id,
                    "user": {"id": user_id or chat_id, "is_bot": False, "first_name": "Owner"},
                    "date": int(time.time()),
                    "old_reaction": [{"type": "emoji", "emoji": old}] if old else [],
                    "new_reaction": [{"type": "emoji", "emoji": emoji}] if emoji else []}
        return self.push_update({"message_reaction": reaction})

    def push_update(self, body: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **body}
        with self._changed:
            self._updates.append(update)
            loop, waiters = self._loop, list(self._update_waiters)
        for event in waiters:
            if loop is not None:
                loop.call_soon_threadsafe(event.set)
        return update

    def stop(self) -> None:
        """Stop serving; a long poll still waiting (its client gone) ends now, not at its timeout."""
        with self._changed:
            self._closing = True
            loop, waiters = self._loop, list(self._update_waiters)
        for event in waiters:
            if loop is not None:
                loop.call_soon_threadsafe(event.set)
        super().stop()

    def add_file(self, content: bytes, file_path: str) -> str:
        """Store a file; a path another file already has gets the new file's id in front, so
        that two files of one name (two sent photos, say) download apart, as on Telegram."""
        with self._changed:
            file_id = f"file{len(self.files) + 1}"
            if any(path == file_path for path, _ in self.files.values()):
                file_path = f"{file_id}/{file_path}"
            self.files[file_id] = (file_path, content)
        return file_id

    def sent(self, chat_id: int) -> list[SentMessage]:
        with self._changed:
            return list(self.messages[chat_id])

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.sent(chat_id)]

    async def wait_sent(self, chat_id: int, count: int, timeout: float = 10.0) -> list[SentMessage]:
        """Wait until `chat_id` holds at least `count` messages; TimeoutError otherwise."""
        await self.wait_for(lambda: len(self.messages[chat_id]) >= count, timeout)
        return self.sent(chat_id)

    async def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        def wait() -> bool:
            with self._changed:
                return self._changed.wait_for(predicate, timeout)

        if not await asyncio.to_thread(wait):
            raise TimeoutError(f"the fake Telegram did not reach the expected state in {timeout}s")

    # --- the API --------------------------------------------------------------------------------

    async def _api(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.path_params["method"]
        params, uploads = await _params(request)
        failure = self._injected(method, params)
        if failure is not None and failure.delay_s:
            await asyncio.sleep(failure.delay_s)
        if failure is not None and failure.status:
            return _error(failure.status, failure.description, failure.retry_after)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            return _error(404, "Not Found")
        try:
            result = await handler(params, uploads)
        except _ApiError as exc:
            return _error(exc.status, exc.description, exc.retry_after)
        return JSONResponse({"ok": True, "result": result})

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return _error(401, "Unauthorized")
        path = request.path_params["path"]
        for file_path, content in self.files.values():
            if file_path == path:
                return Response(content, media_type="application/octet-stream")
        return Response(b"Not Found", status_code=404)

    def _injected(self, method: str, params: dict[str, Any]) -> _Failure | None:
        with self._changed:
            for failure in self._failures:
                if failure.method == method and failure.times > 0 and (
                        failure.chat_id is None or failure.chat_id == _chat(params)) and (
                        failure.text is None or failure.text == params.get("text")):
                    failure.times -= 1
                    return failure
        return None

    async def _m_getMe(self, params: dict, uploads: dict) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Lugh", "username": BOT_USERNAME,
                "can_join_groups": False, "can_read_all_group_messages": False,
                "supports_inline_queries": False}

    async def _m_deleteWebhook(self, params: dict, uploads: dict) -> bool:
        return True

    async def _m_setMyCommands(self, params: dict, uploads: dict) -> bool:
        for command in params.get("commands", []):
            if not re.fullmatch(r"[a-z0-9_]{1,32}", command.get("command", "")) or not (
                    1 <= len(command.get("description", "")) <= 256):
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
        with self._changed:
            self.commands = list(params.get("commands", []))
            self._changed.notify_all()
        return True

    async def _m_getUpdates(self, params: dict, uploads: dict) -> list[dict[str, Any]]:
        self._loop = asyncio.get_running_loop()
        offset, timeout = int(params.get("offset", 0)), float(params.get("timeout", 0))
        limit = int(params.get("limit", 100))
        allowed = params.get("allowed_updates") or None
        deadline = time.monotonic() + timeout
        while True:
            event = asyncio.Event()
            with self._changed:
                if offset:  # confirming: everything below the offset is forgotten
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                ready = [u for u in self._updates
                         if allowed is None or any(k in allowed for k in u if k != "update_id")]
                if ready or time.monotonic() >= deadline or self._closing:
                    return ready[:limit]
                self._update_waiters.add(event)
            try:
                await asyncio.wait_for(event.wait(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                pass
            finally:
                with self._changed:
                    self._update_waiters.discard(event)

    async def _m_sendMessage(self, params: dict, uploads: dict) -> dict[str, Any]:
        chat_id = self._chat_required(params)
        text, entities = _parsed(params.get("text", ""), params.get("parse_mode"), MAX_TEXT)
        markup = _markup(params.get("reply_markup"))
        self._flood_control(chat_id)
        message = self._keep(SentMessage(chat_id, 0, text, params.get("text", ""),
                                           params.get("parse_mode"), markup, "sendMessage", entities,
                                           silent=_flag(params.get("disable_notification"))))
        return self._message_json(message)

    async def _m_sendDocument(self, params: dict, uploads: dict) -> dict[str, Any]:
        return await self._send_file("sendDocument", "document", params, uploads)

    async def _m_sendPhoto(self, params: dict, uploads: dict) -> dict[str, Any]:
        return await self._send_file("sendPhoto", "photo", params, uploads)

    async def _send_file(self, method: str, kind: str, params: dict, uploads: dict) -> dict[str, Any]:
        chat_id = self._chat_required(params)
        if kind not in uploads:
            raise _ApiError(400, f"Bad Request: there is no {kind} in the request")
        filename, content = uploads[kind]
        if not content:
            raise _ApiError(400, "Bad Request: file must be non-empty")
        caption = params.get("caption", "")
        text, entities = (_parsed(caption, params.get("parse_mode"), MAX_CAPTION, "caption")
                          if caption else ("", []))  # fmt: skip
        self._flood_control(chat_id)
        message = self._keep(SentMessage(chat_id, 0, text, caption, params.get("parse_mode"),
                                           _markup(params.get("reply_markup")), method, entities,
                                           document=content, filename=filename,
                                           silent=_flag(params.get("disable_notification"))))
        body = self._message_json(message)
        file_id = self.add_file(content, f"{kind}s/{filename}")
        if kind == "photo":
            body["photo"] = [{"file_id": file_id, "file_unique_id": f"u{file_id}", "width": 800,
                              "height": 600, "file_size": len(content)}]
        else:
            body["document"] = {"file_id": file_id, "file_unique_id": f"u{file_id}",
                                "file_name": filename, "file_size": len(content)}
        return body

    async def _m_editMessageText(self, params: dict, uploads: dict) -> dict[str, Any]:
        message = self._editable(params)
        text, entities = _parsed(params.get("text", ""), params.get("parse_mode"), MAX_TEXT)
        markup = _markup(params.get("reply_markup"))
        if text == message.text and entities == message.entities and markup == message.reply_markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message "
                                 "content and reply markup are exactly the same as a current "
                                 "content and reply markup of the message")
        with self._changed:
            message.text, message.entities, message.reply_markup = text, entities, markup
            message.source, message.parse_mode = params.get("text", ""), params.get("parse_mode")
            message.edits += 1
            self._changed.notify_all()
        return self._message_json(message)

    async def _m_editMessageReplyMarkup(self, params: dict, uploads: dict) -> dict[str, Any]:
        message = self._editable(params)
        markup = _markup(params.get("reply_markup"))
        if markup == message.reply_markup:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message "
                                 "content and reply markup are exactly the same as a current "
                                 "content and reply markup of the message")
        with self._changed:
            message.reply_markup = markup
            message.edits += 1
            self._changed.notify_all()
        return self._message_json(message)

    async def _m_answerCallbackQuery(self, params: dict, uploads: dict) -> bool:
        if not params.get("callback_query_id"):
            raise _ApiError(400, "Bad Request: query is too old and response timeout expired or query ID is invalid")
        if len(params.get("text", "")) > 200:
            raise _ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._changed:
            self.answered_callbacks.append(params)
            self._changed.notify_all()
        return True

    async def _m_getFile(self, params: dict, uploads: dict) -> dict[str, Any]:
        file_id = params.get("file_id", "")
        if file_id not in self.files:
            raise _ApiError(400, "Bad Request: invalid file_id")
        path, content = self.files[file_id]
        if len(content) > 20 * 1024 * 1024:
            raise _ApiError(400, "Bad Request: file is too big")
        return {"file_id": file_id, "file_unique_id": f"u{file_id}", "file_size": len(content),
                "file_path": path}

    # --- helpers --------------------------------------------------------------------------------

    def _chat_required(self, params: dict) -> int:
        chat_id = _chat(params)
        if chat_id is None:
            raise _ApiError(400, "Bad Request: chat_id is empty")
        if chat_id <= 0 and chat_id > -100:
            raise _ApiError(400, "Bad Request: chat not found")
        return chat_id

    def _editable(self, params: dict) -> SentMessage:
        chat_id = self._chat_required(params)
        message = self._find(chat_id, int(params.get("message_id", 0)))
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return message

    def _find(self, chat_id: int, message_id: int) -> SentMessage | None:
        with self._changed:
            return next((m for m in self.messages[chat_id] if m.message_id == message_id), None)

    def _flood_control(self, chat_id: int) -> None:
        if self.rate_limits is None:
            return
        now = time.monotonic()
        with self._changed:
            chat, overall = self._sent_times[chat_id], self._all_times
            for times in (chat, overall):
                while times and times[0] <= now - 1.0:
                    times.popleft()
            if len(chat) >= self.rate_limits.per_chat_per_s or (
                    len(overall) >= self.rate_limits.overall_per_s):
                self.rate_limited += 1
                raise _ApiError(429, "Too Many Requests: retry after 1", retry_after=1)
            chat.append(now)
            overall.append(now)

    def _keep(self, message: SentMessage) -> SentMessage:
        with self._changed:
            message.message_id = next(self._message_ids[message.chat_id])
            message.at = time.monotonic()
            self.messages[message.chat_id].append(message)
            self._changed.notify_all()
        return message

    def _message_json(self, message: SentMessage) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message_id": message.message_id, "date": int(time.time()),
            "chat": {"id": message.chat_id, "type": "private"},
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "Lugh", "username": BOT_USERNAME},
        }  # fmt: skip
        key = "text" if message.method in ("sendMessage", "editMessageText") else "caption"
        if message.text:
            body[key] = message.text
        if message.entities:
            body["entities" if key == "text" else "caption_entities"] = message.entities
        if message.reply_markup:
            body["reply_markup"] = message.reply_markup
        if message.edits:
            body["edit_date"] = int(time.time())
        return body


class _ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.retry_after = status, description, retry_after


def _error(status: int, description: str, retry_after: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if retry_after is not None:
        body["parameters"] = {"retry_after": retry_after}
    return JSONResponse(body, status_code=status)


async def _params(request: Request) -> tuple[dict[str, Any], dict[str, tuple[str, bytes]]]:
    params: dict[str, Any] = dict(request.query_params)
    uploads: dict[str, tuple[str, bytes]] = {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/json"):
        body = await request.body()
        params.update(json.loads(body) if body else {})
        return params, uploads
    if content_type.startswith(("multipart/form-data", "application/x-www-form-urlencoded")):
        form = await request.form()
        for key, value in form.multi_items():
            if isinstance(value, str):
                params[key] = json.loads(value) if key in _JSON_FIELDS else value
            else:
                uploads[key] = (value.filename or key, await value.read())
        await form.close()
    for key, value in list(params.items()):  # attach://name points at an uploaded part
        if isinstance(value, str) and value.startswith("attach://") and value[9:] in uploads:
            uploads[key] = uploads.pop(value[9:])
    return params, uploads


def _chat(params: dict[str, Any]) -> int | None:
    try:
        return int(params["chat_id"])
    except (KeyError, ValueError):
        return None


def _parsed(source: str, parse_mode: str | None, limit: int, what: str = "message") -> tuple[str, list]:
    if parse_mode is not None and parse_mode.upper() not in ("HTML",):
        raise _ApiError(400, f"Bad Request: unsupported parse_mode {parse_mode}")
    try:
        text, entities = parse_html(source) if parse_mode else (source, [])
    except EntityParseError as exc:
        raise _ApiError(400, f"Bad Request: can't parse entities: {str(exc).split(': ', 1)[1]}") from None
    if not text.strip():
        raise _ApiError(400, f"Bad Request: {what} text is empty")
    if utf16_len(text) > limit:
        raise _ApiError(400, f"Bad Request: {what} is too long")
    return text, entities


def _flag(value: Any) -> bool:
    """A boolean parameter, sent as JSON or as a form field."""
    return value is True or (isinstance(value, str) and value.lower() == "true")


def _markup(markup: Any) -> dict[str, Any] | None:
    if not markup:
        return None
    for row in markup.get("inline_keyboard", []):
        for button in row:
            data = button.get("callback_data")
            if data is not None and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA:
                raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
            if not button.get("text"):
                raise _ApiError(400, "Bad Request: text buttons are unallowed in the inline keyboard")
    return markup
