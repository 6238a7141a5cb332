"""Files of the OpenAI API (batch input, output and error files), kept in the queue's server."""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

import redis
from pydantic import BaseModel, Field

from worker.queue import keys
from worker.queue.replies import as_text

Purpose = Literal["batch", "batch_output"]
MAX_BYTES = 512 * 1024 * 1024 - 1  # the largest value the server keeps
MAX_FILENAME = 255


class UnknownFile(LookupError):
    def __init__(self, file_id: str) -> None:
        super().__init__(f"no file with id {file_id!r}")
        self.file_id = file_id


class StoredFile(BaseModel):
    """A file as OpenAI's API describes one (its content is read on its own)."""

    id: str
    object: Literal["file"] = "file"
    bytes: int = Field(description="Its size.")
    created_at: int = Field(description="When it was stored (Unix seconds).")
    filename: str
    purpose: Purpose
    status: Literal["processed"] = "processed"
    status_details: str | None = None
    expires_at: int | None = Field(default=None, description="Never: files stay until deleted.")


def new_file_id() -> str:
    return f"file-{uuid.uuid4().hex[:24]}"


class FileStore:
    """Stores, lists, reads and deletes files; each one is a metadata hash, its content and
    its place in the upload order."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def add(
        self, content: bytes, filename: str, purpose: Purpose, file_id: str | None = None
    ) -> StoredFile:
        """Store a file. With `file_id` given (a batch's output) an existing file of that id
        is kept as it is, so that writing it twice is harmless."""
        if len(content) > MAX_BYTES:
            raise ValueError(f"the file is {len(content)} bytes; at most {MAX_BYTES} are kept")
        if file_id is not None and self.redis.exists(keys.file(file_id)):
            return self.get(file_id)
        stored = StoredFile(
            id=file_id or new_file_id(),
            bytes=len(content),
            created_at=int(time.time()),
            filename=filename.encode("utf-8", "replace").decode("utf-8")[:MAX_FILENAME],
            purpose=purpose,
        )
        seq = int(self.redis.incr(keys.SEQ))
        meta: dict[Any, str | int] = {"bytes": stored.bytes, "created_at": stored.created_at,
                "filename": stored.filename, "purpose": stored.purpose}  # fmt: skip
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(keys.file_content(stored.id), content)
            pipe.hset(keys.file(stored.id), mapping=meta)
            pipe.zadd(keys.FILES, {stored.id: seq})
            pipe.execute()
        return stored

    def get(self, file_id: str) -> StoredFile:
        found = self._decode(file_id, self.redis.hgetall(keys.file(file_id)))
        if found is None:
            raise UnknownFile(file_id)
        return found

    def content(self, file_id: str) -> bytes:
        data: Any = self.redis.get(keys.file_content(file_id))
        if data is None:
            raise UnknownFile(file_id)
        return bytes(data)

    def delete(self, file_id: str) -> None:
        with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(keys.file(file_id), keys.file_content(file_id))
            pipe.zrem(keys.FILES, file_id)
            deleted, _ = pipe.execute()
        if not deleted:
            raise UnknownFile(file_id)

    def page(
        self,
        *,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10_000,
        newest_first: bool = True,
    ) -> tuple[list[StoredFile], bool]:
        """Files in upload order (newest first unless told), those after the file `after`
        (UnknownFile if there is none), `limit` at most; and whether more follow."""
        members: Any = self.redis.zrange(keys.FILES, 0, -1, desc=newest_first)
        ids = [as_text(m) for m in members]
        if after is not None:
            if after not in ids:
                raise UnknownFile(after)
            ids = ids[ids.index(after) + 1 :]
        found: list[StoredFile] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            with self.redis.pipeline(transaction=False) as pipe:
                for file_id in chunk:
                    pipe.hgetall(keys.file(file_id))
                rows = pipe.execute()
            for file_id, row in zip(chunk, rows, strict=True):
                stored = self._decode(file_id, row)
                if stored is not None and (purpose is None or stored.purpose == purpose):
                    if len(found) == limit:
                        return found, True
                    found.append(stored)
        return found, False

    @staticmethod
    def _decode(file_id: str, row: Any) -> StoredFile | None:
        fields = {as_text(k): as_text(v) for k, v in (row or {}).items()}
        if not fields:
            return None
        return StoredFile(
            id=file_id,
            bytes=int(fields["bytes"]),
            created_at=int(fields["created_at"]),
            filename=fields["filename"],
            purpose="batch_output" if fields["purpose"] == "batch_output" else "batch",
        )
