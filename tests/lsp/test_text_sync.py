"""apply_edit splices an incremental edit into a buffer exactly as pygls's own apply_change would."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lsprotocol import types as lsp
from pygls.workspace import TextDocument

from perfd.lsp.pygls_adapter import apply_edit

# Line breaks pygls and LSP disagree on (\v, \f, \u2028) included: the splice must agree with pygls.
chars = st.characters(codec="utf-8", exclude_categories=["Cs"]) | st.sampled_from(
    ["\n", "\r\n", "\r", "\v", "\u2028", "😀", "é", "#"])
texts = st.lists(chars, max_size=200).map("".join)
positions = st.builds(lambda line, ch: lsp.Position(line=line, character=ch), st.integers(0, 12), st.integers(0, 30))


def _doc(text: str) -> TextDocument:
    return TextDocument("file:///x/PLAN_X.md", text, version=1, sync_kind=lsp.TextDocumentSyncKind.Incremental)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, positions, positions, texts)
def test_apply_edit_matches_pygls(text: str, a: lsp.Position, b: lsp.Position, new: str) -> None:
    change = lsp.TextDocumentContentChangePartial(range=lsp.Range(start=a, end=b), text=new)
    ours, theirs = _doc(text), _doc(text)
    apply_edit(ours, change)
    theirs.apply_change(change)
    assert ours.source == theirs.source


def test_a_whole_document_change_replaces_the_text() -> None:
    td = _doc("old\n")
    apply_edit(td, lsp.TextDocumentContentChangeWholeDocument(text="new\n"))
    assert td.source == "new\n"
