import pytest

from lugh.llm.transcribe import (
    OpenAITranscriber,
    TranscriptionError,
    confidence,
    looks_like_audio,
)
from tests.fakes.openai import API_KEY, FakeOpenAI, fake_audio


@pytest.fixture
def fake():
    with FakeOpenAI() as server:
        yield server


def segment(start, end, avg_logprob, no_speech_prob):
    return {"start": start, "end": end, "avg_logprob": avg_logprob,
            "no_speech_prob": no_speech_prob}


def test_confidence_is_word_probability_times_speech_probability_weighted_by_length():
    clear = segment(0, 9, 0.0, 0.0)
    mumble = segment(9, 10, -2.302585, 0.5)  # words 10% likely, half likely speech at all

    assert confidence([clear]) == pytest.approx(1.0)
    assert confidence([mumble]) == pytest.approx(0.05, abs=1e-4)
    assert confidence([clear, mumble]) == pytest.approx((9 * 1.0 + 1 * 0.05) / 10, abs=1e-4)


def test_no_segments_is_no_confidence():
    assert confidence([]) == 0.0


async def test_the_transcript_comes_back_with_its_confidence(fake):
    transcriber = OpenAITranscriber(api_key=API_KEY, model="whisper-1", base_url=fake.base_url)
    try:
        heard = await transcriber.transcribe(fake_audio("Ship it.", avg_logprob=-0.05), "v.ogg")
    finally:
        await transcriber.aclose()

    assert heard.text == "Ship it."
    assert heard.confidence == pytest.approx(0.951 * 0.99, abs=1e-3)


async def test_audio_the_api_cannot_read_is_an_unreadable_error(fake):
    transcriber = OpenAITranscriber(api_key=API_KEY, model="whisper-1", base_url=fake.base_url)
    try:
        with pytest.raises(TranscriptionError) as caught:
            await transcriber.transcribe(b"garbage", "v.ogg")
    finally:
        await transcriber.aclose()

    assert caught.value.unreadable


@pytest.mark.parametrize("data, audio", [
    (b"OggS\x00\x02...", True), (b"ID3\x04...", True), (b"\xff\xfb\x90\x64...", True),
    (b"\x00\x00\x00\x20ftypM4A ", True), (b"RIFF\x24\x00\x00\x00WAVE", True),
    (b"fLaC\x00", True), (b"\x1a\x45\xdf\xa3webm", True),
    (b"", False), (b"%PDF-1.7", False), (b"hello, this is text", False),
])  # fmt: skip
def test_only_bytes_that_start_like_an_audio_file_look_like_audio(data, audio):
    assert looks_like_audio(data) is audio
