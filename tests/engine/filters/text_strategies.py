"""Texts for the property tests of the text filters: real prose and code, and adversarial text built from
words, punctuation, scripts and every kind of whitespace and line break Python knows."""

from __future__ import annotations

import pydoc_data.topics

from hypothesis import strategies as st

PIECES = [
    "word", "Word", "WORD", "the", "and", "of", "to", "with", "that", "have", "be", "lorem ipsum",
    "Lorem Ipsum", "javascript", "JavaScript", "cookie policy", "uses cookies", "Terms of Use", "e.g.",
    "Dr.", "don't", "We're", "U.S.", "http://example.com/a-b?x=1", "3.14", "1,000", "10km", "#tag", ".",
    "...", "…", "……", ",", ";", ":", "!", "?", "(", ")", "[1]", "[edit]", "[citation needed]", "[٣]", "[]",
    "{", "}", '"', "'", "-", "--", "•", "—", ":)", "Привет", "мир.", "这是一个测试", "。", "।", "مرحبا؟",
    "नमस्ते", "😀", "e\u0301", "İ", "\u212a", "ß", "ﬁ", "\u0301", "\x00", "\x7f", "uses coo\u212aies.",
    "LOREM İPSUM.",
]  # fmt: skip
SEPARATORS = [
    " ", " ", " ", "  ", "\t", "\n", "\n", "\n\n", "\n\n\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d",
    "\x1e", "\x1f", "\x85", "\xa0", "\u2028", "\u2029", "\u3000", "\u2009", " \n ", ". ", ".  ", "\t.",
]  # fmt: skip
WHITESPACE = "".join(sorted(set("".join(SEPARATORS)) - {"."}))

#: Text made of the pieces above, with any separators between them.
BUILT = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SEPARATORS)), max_size=60).map(
    lambda pairs: "".join(piece + separator for piece, separator in pairs)
)
DOCUMENTS = st.one_of(
    BUILT,
    BUILT.map(lambda text: text * 3),  # whole repeats: repeated lines, paragraphs and n-grams
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=120),
    st.text(alphabet=WHITESPACE, max_size=12),
    st.just(""),
)
#: A batch of texts, some of them null.
BATCHES = st.lists(st.one_of(DOCUMENTS, st.none()), min_size=1, max_size=6)


def real_texts() -> list[str]:
    """Python's own documentation, topic by topic: prose, code, tables and lists."""
    topics: dict[str, str] = pydoc_data.topics.topics
    return [topics[key] for key in sorted(topics)]
