"""What the bot calls for media: voice notes, photos and documents (one module each)."""

from lugh.transport.telegram.documents import on_document
from lugh.transport.telegram.photos import on_photo
from lugh.transport.telegram.voice import on_voice

__all__ = ["on_document", "on_photo", "on_voice"]
