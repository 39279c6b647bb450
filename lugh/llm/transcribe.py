"""Speech to text through OpenAI's transcription API (`openai.AsyncOpenAI`), with a confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import openai

from lugh.errors import UserError
from lugh.logs import get_logger

log = get_logger("lugh.llm.transcribe")


@dataclass(frozen=True)
class Transcript:
    text: str
    confidence: float  # 0..1, see `confidence`
    duration_s: float | None = None


class TranscriptionError(UserError):
    """The audio could not be transcribed; `str()` says why in one sentence. `unreadable`: the
    API refused the file itself (corrupt, not audio), so sending it again will not help."""

    def __init__(self, message: str, *, unreadable: bool = False) -> None:
        super().__init__(message)
        self.unreadable = unreadable


class Transcriber(Protocol):
    async def transcribe(self, audio: bytes, filename: str) -> Transcript: ...

    async def aclose(self) -> None: ...


class OpenAITranscriber:
    """Whisper (or another LUGH_TRANSCRIBE_MODEL) over the official SDK; `base_url` points it at
    any compatible server."""

    def __init__(
        self, *, api_key: str, model: str, base_url: str | None = None, timeout_s: float = 60.0
    ) -> None:
        self.model = model
        self._client = openai.AsyncOpenAI(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=2
        )

    async def aclose(self) -> None:
        await self._client.close()

    async def transcribe(self, audio: bytes, filename: str) -> Transcript:
        """The words in `audio` with their confidence; TranscriptionError otherwise."""
        try:
            result = await self._client.audio.transcriptions.create(
                model=self.model, file=(filename, audio), response_format="verbose_json"
            )
        except openai.APIStatusError as exc:
            log.warning("transcription refused", status=exc.status_code)
            if exc.status_code == 400:
                raise TranscriptionError(
                    "The transcription service could not read that audio (it may be corrupt "
                    "or not a voice recording).", unreadable=True,
                ) from None  # fmt: skip
            if exc.status_code == 401:
                raise TranscriptionError(
                    "The transcription service refused the API key; set a valid OPENAI_API_KEY."
                ) from None
            raise TranscriptionError(
                f"The transcription service answered {exc.status_code}; try again later."
            ) from None
        except openai.APIConnectionError:
            raise TranscriptionError(
                "The transcription service could not be reached; try again later."
            ) from None
        segments = getattr(result, "segments", None) or []
        text = (result.text or "").strip()
        return Transcript(text, confidence(segments) if text else 0.0,
                          getattr(result, "duration", None))  # fmt: skip


# Container signatures of the formats the transcription API takes (flac, m4a/mp4, mp3, ogg, wav,
# webm): bytes with none of them are not a recording, and are not sent.
_SIGNATURES = (
    (0, b"OggS"), (0, b"fLaC"), (0, b"RIFF"), (0, b"ID3"), (0, b"\x1a\x45\xdf\xa3"),
    (4, b"ftyp"),
)  # fmt: skip


def looks_like_audio(data: bytes) -> bool:
    """Whether `data` starts like an audio file the API reads (an MPEG frame sync counts)."""
    if any(data[at : at + len(magic)] == magic for at, magic in _SIGNATURES):
        return True
    return len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0


def confidence(segments: Sequence[Any]) -> float:
    """How sure the transcription is, from 0 to 1, from Whisper's own per-segment figures.

    For each segment, `exp(avg_logprob)` is the geometric mean probability of its tokens (how
    sure the decoder was of each word) and `1 - no_speech_prob` how likely the segment is speech
    at all; their product is the chance the segment's words are right. Segments are weighted by
    their length in seconds (each counts at least a little, so zero-length ones still do), so a
    long clear sentence is not dragged down by a short mumble at the end. No segments (a model
    that does not report them) means no evidence: 0, and the owner is asked to confirm.
    """
    total, weights = 0.0, 0.0
    for segment in segments:
        logprob = _number(segment, "avg_logprob")
        no_speech = _number(segment, "no_speech_prob")
        if logprob is None:
            continue
        weight = max(0.1, (_number(segment, "end") or 0.0) - (_number(segment, "start") or 0.0))
        words = math.exp(min(0.0, logprob))
        speech = 1.0 - min(1.0, max(0.0, no_speech or 0.0))
        total += weight * words * speech
        weights += weight
    return total / weights if weights else 0.0


def _number(segment: Any, name: str) -> float | None:
    value = segment.get(name) if isinstance(segment, dict) else getattr(segment, name, None)
    return float(value) if isinstance(value, (int, float)) else None
