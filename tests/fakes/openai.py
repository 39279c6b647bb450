"""A fake OpenAI API speaking the real wire format, for the real `openai` SDK to talk to.

Serves POST /v1/embeddings. Further endpoints (e.g. /v1/audio/transcriptions) are added as
routes in `FakeOpenAI.routes`, wrapped in `self.endpoint` so queued failures and the API key
check apply to them too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from tests.fakes.server import FakeServer

API_KEY = "sk-test-fake"
EMBEDDING_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072}
MAX_INPUTS = 2048
OGG_MAGIC = b"OggS\x00\x02"
TRANSCRIBE_MODELS = {"whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"}
MAX_AUDIO_BYTES = 25 * 1024 * 1024

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Failure:
    status: int
    path_suffix: str
    retry_after_ms: int | None


def fake_embedding(text: str, dims: int = 1536) -> np.ndarray:
    """The unit vector the fake returns for `text`: a pure function of the text."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vector = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    return vector / np.linalg.norm(vector)


def fake_audio(
    text: str, *, avg_logprob: float = -0.1, no_speech_prob: float = 0.01, seconds: float = 3.0
) -> bytes:
    """A "recording" the fake transcribes as `text` with these segment figures: an Ogg page
    header followed by what it says. Bytes without the header are refused as not audio."""
    said = {"text": text, "avg_logprob": avg_logprob, "no_speech_prob": no_speech_prob,
            "seconds": seconds}  # fmt: skip
    return OGG_MAGIC + json.dumps(said).encode()


def error(status: int, message: str, type_: str, code: str | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": type_, "param": None, "code": code}}
    return JSONResponse(body, status_code=status)


class FakeOpenAI(FakeServer):
    """OpenAI's API on a loopback port; `base_url` is what the SDK takes."""

    def __init__(self) -> None:
        self._failures: list[Failure] = []
        self._failures_lock = threading.Lock()
        self.transcriptions: list[dict] = []  # every transcription request that got an answer
        super().__init__(self.routes())

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/v1/embeddings", self.endpoint(self._embeddings), methods=["POST"]),
            Route("/v1/audio/transcriptions", self.endpoint(self._transcriptions),
                  methods=["POST"]),
        ]  # fmt: skip

    def fail_next(
        self, status: int = 429, *, path_suffix: str = "", times: int = 1,
        retry_after_ms: int | None = 10,
    ) -> None:
        """Answer the next `times` requests to paths ending in `path_suffix` with `status`."""
        with self._failures_lock:
            self._failures += [Failure(status, path_suffix, retry_after_ms)] * times

    def endpoint(self, handler: Handler) -> Handler:
        """`handler` behind the API key check and the queued failures."""

        async def guarded(request: Request) -> Response:
            if request.headers.get("authorization") != f"Bearer {API_KEY}":
                return error(401, "Incorrect API key provided.", "invalid_request_error",
                             "invalid_api_key")
            failure = self._take_failure(request.url.path)
            if failure is not None:
                return self._failure_response(failure)
            return await handler(request)

        return guarded

    def _take_failure(self, path: str) -> Failure | None:
        with self._failures_lock:
            for i, failure in enumerate(self._failures):
                if path.endswith(failure.path_suffix):
                    return self._failures.pop(i)
        return None

    @staticmethod
    def _failure_response(failure: Failure) -> Response:
        if failure.status == 429:
            response = error(429, "Rate limit reached for requests.", "requests",
                             "rate_limit_exceeded")
        else:
            response = error(failure.status, "The server had an error.", "server_error")
        if failure.retry_after_ms is not None:
            # OpenAI sends both; the SDK prefers the millisecond one.
            response.headers["retry-after-ms"] = str(failure.retry_after_ms)
            response.headers["retry-after"] = str(math.ceil(failure.retry_after_ms / 1000))
        return response

    async def _embeddings(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body())
        except ValueError:
            return error(400, "We could not parse the JSON body of your request.",
                         "invalid_request_error")
        model = body.get("model")
        if model not in EMBEDDING_DIMS:
            return error(404, f"The model `{model}` does not exist.", "invalid_request_error",
                         "model_not_found")
        inputs = body.get("input")
        inputs = [inputs] if isinstance(inputs, str) else inputs
        if (
            not isinstance(inputs, list)
            or not 0 < len(inputs) <= MAX_INPUTS
            or any(not isinstance(text, str) or text == "" for text in inputs)
        ):
            return error(400, "'$.input' is invalid. Please check the API reference.",
                         "invalid_request_error")
        dims = body.get("dimensions", EMBEDDING_DIMS[model])
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            return error(400, f"Invalid encoding_format {encoding!r}.", "invalid_request_error")
        data = []
        for index, text in enumerate(inputs):
            vector = fake_embedding(text, dims)
            embedding = (
                base64.b64encode(vector.astype("<f4").tobytes()).decode()
                if encoding == "base64"
                else vector.tolist()
            )
            data.append({"object": "embedding", "index": index, "embedding": embedding})
        tokens = sum(max(1, len(text.split())) for text in inputs)
        return JSONResponse(
            {
                "object": "list",
                "data": data,
                "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def _transcriptions(self, request: Request) -> Response:
        """POST /v1/audio/transcriptions (multipart): `file`, `model`, `response_format`."""
        async with request.form() as form:
            model, upload = form.get("model"), form.get("file")
            response_format = form.get("response_format") or "json"
            audio = None
            if upload is not None and not isinstance(upload, str):
                audio = await upload.read()
        if model not in TRANSCRIBE_MODELS:
            return error(404, f"The model `{model}` does not exist.", "invalid_request_error",
                         "model_not_found")
        if audio is None:
            return error(400, "Missing required parameter: 'file'.", "invalid_request_error")
        if len(audio) > MAX_AUDIO_BYTES:
            return error(413, "Maximum content size limit (26214400) exceeded.",
                         "invalid_request_error")
        try:
            said = json.loads(audio[len(OGG_MAGIC):]) if audio.startswith(OGG_MAGIC) else None
        except ValueError:
            said = None
        if not isinstance(said, dict):
            return error(400, "Audio file might be corrupted or unsupported",
                         "invalid_request_error", "invalid_value")
        if response_format not in ("json", "text", "verbose_json", "srt", "vtt"):
            return error(400, f"Invalid response_format {response_format!r}.",
                         "invalid_request_error")
        with self._failures_lock:
            self.transcriptions.append({"model": model, "response_format": response_format,
                                        "filename": upload.filename, "size": len(audio)})
        text = said["text"]
        if response_format != "verbose_json":
            return JSONResponse({"text": text})
        segment = {"id": 0, "seek": 0, "start": 0.0, "end": said["seconds"], "text": text,
                   "tokens": [50364], "temperature": 0.0, "avg_logprob": said["avg_logprob"],
                   "compression_ratio": 1.2, "no_speech_prob": said["no_speech_prob"]}
        return JSONResponse({"task": "transcribe", "language": "english",
                             "duration": said["seconds"], "text": text,
                             "segments": [segment] if text else []})  # fmt: skip
