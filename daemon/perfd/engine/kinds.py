"""Each kind of plan file and the parser that reads it: one table, shared by the engine and the parse workers."""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from perfd.engine.docs_parser import parse_feedback, parse_parallel, parse_work
from perfd.engine.plan_parser import parse_plan
from perfd.engine.types import FeedbackDoc, ParallelGraph, PlanDoc, WorkDoc


def parse_subplan(data: bytes, path: str) -> WorkDoc:
    return parse_work(data, path, "subplan")


def parse_execution(data: bytes, path: str) -> WorkDoc:
    return parse_work(data, path, "execution")


def parse_fix(data: bytes, path: str) -> FeedbackDoc:
    return parse_feedback(data, path, "fix")


def parse_approved(data: bytes, path: str) -> FeedbackDoc:
    return parse_feedback(data, path, "approved")


ParsedDoc = PlanDoc | WorkDoc | FeedbackDoc | ParallelGraph  # what a kind's parser gives

# kind (the StatCache's) -> parser of the file's bytes
PARSERS: dict[str, Callable[[bytes, str], ParsedDoc]] = {
    "plan": parse_plan,
    "subplan": parse_subplan,
    "execution": parse_execution,
    "fix": parse_fix,
    "approved": parse_approved,
    "parallel": parse_parallel,
}

# kind -> what its packed form (msgpack) decodes back into: the cache holds parsed files packed
# (a quarter of the memory of the objects), and workers and the parse store hand them over so.
UNPACK: dict[str, Callable[[bytes], ParsedDoc]] = {
    "plan": msgspec.msgpack.Decoder(PlanDoc).decode,
    "subplan": msgspec.msgpack.Decoder(WorkDoc).decode,
    "execution": msgspec.msgpack.Decoder(WorkDoc).decode,
    "fix": msgspec.msgpack.Decoder(FeedbackDoc).decode,
    "approved": msgspec.msgpack.Decoder(FeedbackDoc).decode,
    "parallel": msgspec.msgpack.Decoder(ParallelGraph).decode,
}
pack = msgspec.msgpack.Encoder().encode
