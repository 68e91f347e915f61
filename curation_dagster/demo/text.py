"""The text shards of the demo: English news, a multilingual forum and a web crawl, with planted problems.

Documents are drawn from the sentences in `corpus/` with seeded generators, then copies, near duplicates,
boilerplate, toxic, too short, too long and corrupt lines are planted among them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

from curation_dagster.demo.corpus_files import corpus_lines, corpus_lists, corpus_paragraphs
from curation_dagster.demo.formats import Line

T = TypeVar("T")

NEWS_SENTENCES: dict[str, tuple[str, ...]] = corpus_lists("news_sentences.json")
"""English news sentences by topic; demo news documents are drawn from these."""

ENCYCLOPEDIA_SENTENCES: tuple[str, ...] = corpus_lines("encyclopedia_sentences.txt")
"""Formal, encyclopedic English sentences for the web-crawl shard."""

FORUM_SENTENCES: dict[str, tuple[str, ...]] = corpus_lists("forum_sentences.json")
"""Colloquial forum sentences per language (English, German, French, Spanish)."""

TOXIC_NEWS_TEXTS: tuple[str, ...] = corpus_lines("toxic_news_texts.txt")
"""Mildly toxic English comments planted in the news shard."""

TOXIC_FORUM_TEXTS: dict[str, tuple[str, ...]] = corpus_lists("toxic_forum_texts.json")
"""Mildly toxic forum posts, two per language."""

BOILERPLATE_TEXTS: tuple[str, ...] = corpus_paragraphs("boilerplate_texts.txt")
"""Navigation, cookie and newsletter boilerplate planted in the news shard."""

SHORT_TEXTS: tuple[str, ...] = corpus_lines("short_texts.txt")
"""Documents of one to three words, too short to keep."""

SHORT_FORUM_TEXTS: tuple[str, ...] = corpus_lines("short_forum_texts.txt")
"""Forum posts too short to keep."""

WORD_SUBSTITUTES: tuple[str, ...] = corpus_lines("word_substitutes.txt")
"""Replacement words used to make near duplicates."""


def _compose_documents(
    rng: random.Random,
    count: int,
    primary_pools: Sequence[Sequence[str]],
    secondary_pool: Sequence[str],
    sizes: tuple[int, int],
    max_overlap: float,
) -> list[tuple[int, list[str]]]:
    """Draw `count` documents as (primary pool index, sentences), about half from the primary pool.

    Any two documents share at most `max_overlap` of their sentences (Jaccard), so only planted copies
    are near duplicates of each other.
    """
    documents: list[tuple[int, list[str]]] = []
    taken: list[frozenset[str]] = []
    for _ in range(200 * count):
        if len(documents) == count:
            return documents
        pool_index = rng.randrange(len(primary_pools))
        size = rng.randint(*sizes)
        own = size if not secondary_pool else min(len(primary_pools[pool_index]), (size + 1) // 2)
        sentences = rng.sample(list(primary_pools[pool_index]), own)
        others = [sentence for sentence in secondary_pool if sentence not in sentences]
        sentences += rng.sample(others, size - own)
        candidate = frozenset(sentences)
        if all(len(candidate & other) / len(candidate | other) <= max_overlap for other in taken):
            taken.append(candidate)
            documents.append((pool_index, sentences))
    raise ValueError(
        f"cannot draw {count} distinct documents from the pools; lower the count or add sentences"
    )


def _plant_after(rng: random.Random, base: Sequence[T], planted: Sequence[tuple[int, T]]) -> list[T]:
    """Merge `planted` (base index, item) pairs into `base`, each at a random place after its base index."""
    slots: dict[int, list[T]] = {}
    for original, item in planted:
        slots.setdefault(rng.randint(original + 1, len(base)), []).append(item)
    merged: list[T] = []
    for position in range(len(base) + 1):
        merged += slots.get(position, [])
        if position < len(base):
            merged.append(base[position])
    return merged


def _case_and_space_variant(text: str, variant: int) -> str:
    """A copy of `text` that differs from it only in letter case or whitespace."""
    variants = (
        text,
        text + "   ",
        text.replace(". ", ".  "),
        text.lower(),
        "  " + text.upper() + " \n",
    )
    return variants[variant % len(variants)]


def _replace_words(rng: random.Random, text: str, count: int) -> str:
    """`text` with `count` of its longer words swapped for other words: a near duplicate."""
    words = text.split(" ")
    candidates = [index for index, word in enumerate(words) if word.isalpha() and len(word) > 4]
    for index in rng.sample(candidates, count):
        words[index] = rng.choice([word for word in WORD_SUBSTITUTES if word != words[index]])
    return " ".join(words)


def _long_document(rng: random.Random, sentences: Sequence[str], min_chars: int) -> str:
    """A document longer than `min_chars` characters: many paragraphs of shuffled sentences."""
    paragraphs: list[str] = []
    while sum(len(paragraph) + 2 for paragraph in paragraphs) <= min_chars:
        paragraphs.append(" ".join(rng.sample(list(sentences), 6)))
    return "\n\n".join(paragraphs)


def _news_sentences() -> list[str]:
    """Every news sentence, topics in name order."""
    return [sentence for topic in sorted(NEWS_SENTENCES) for sentence in NEWS_SENTENCES[topic]]


def news_documents(rng: random.Random) -> list[tuple[str, str]]:
    """The clean news documents as (topic, text), 3 to 12 sentences each."""
    topics = sorted(NEWS_SENTENCES)
    pools = [NEWS_SENTENCES[topic] for topic in topics]
    documents = _compose_documents(rng, 110, pools, _news_sentences(), (3, 12), max_overlap=0.34)
    return [(topics[index], " ".join(sentences)) for index, sentences in documents]


def news_records(rng: random.Random, documents: Sequence[tuple[str, str]]) -> list[Line]:
    """The lines of `news_en.jsonl`: clean documents with planted copies, junk and corrupt lines."""
    planted: list[tuple[int, tuple[str, str]]] = []
    for variant, original in enumerate(rng.sample(range(80), 10)):
        topic, text = documents[original]
        planted.append((original, (topic, _case_and_space_variant(text, variant))))
    longest = sorted(range(len(documents)), key=lambda index: (-len(documents[index][1]), index))[:10]
    for number, original in enumerate(longest):
        topic, text = documents[original]
        planted.append((original, (topic, _replace_words(rng, text, 1 + number % 2))))
    junk = [("boilerplate", text) for text in BOILERPLATE_TEXTS]
    junk += [("briefs", text) for text in SHORT_TEXTS]
    junk += [("comments", text) for text in TOXIC_NEWS_TEXTS]
    junk += [("longreads", _long_document(rng, _news_sentences(), 26_000)) for _ in range(2)]
    planted += [(rng.randrange(len(documents)), item) for item in junk]

    lines: list[Line] = [
        {"text": text, "source": "news", "url": f"https://example.org/news/{topic}"}
        for topic, text in _plant_after(rng, documents, planted)
    ]
    corrupt: list[Line] = [
        b'{"text": "The council met on Tuesday to discuss the',
        ["news", "not", "an", "object"],
        {"text": "", "source": "news", "url": "https://example.org/news/empty"},
        {"text": "  \t \n  ", "source": "news", "url": "https://example.org/news/blank"},
        {"title": "Missing body", "source": "news", "url": "https://example.org/news/missing"},
        b'{"text": "Caf\xe9 prices rose \xff\xfe again.", "source": "news", "url": "https://example.org/news/bytes"}',
    ]
    for offset, line in enumerate(corrupt):
        lines.insert(20 + 23 * offset, line)
    return _numbered(lines, "news")


def _numbered(lines: Sequence[Line], prefix: str) -> list[Line]:
    """Give every object line an id `<prefix>-NNNN` from its line number, appended to its url too."""
    numbered: list[Line] = []
    for number, line in enumerate(lines, start=1):
        if isinstance(line, dict):
            line_id = f"{prefix}-{number:04d}"
            line = {"id": line_id, **line}
            if "url" in line:
                line["url"] = f"{line['url']}/{line_id}"
        numbered.append(line)
    return numbered


def forum_posts(rng: random.Random) -> dict[str, list[str]]:
    """Clean colloquial forum posts by language, 2 to 4 sentences each."""
    posts: dict[str, list[str]] = {}
    for language in sorted(FORUM_SENTENCES):
        pools = [FORUM_SENTENCES[language]]
        documents = _compose_documents(rng, 32, pools, (), (2, 4), max_overlap=0.25)
        posts[language] = [" ".join(sentences) for _, sentences in documents]
    return posts


def forum_records(rng: random.Random, posts: dict[str, list[str]], news_texts: Sequence[str]) -> list[Line]:
    """The lines of `forum_multilang.jsonl.gz`: posts in four languages with planted cases mixed in."""
    board_posts = [(language, text) for language in sorted(posts) for text in posts[language]]
    board_posts += [
        (language, text) for language in sorted(TOXIC_FORUM_TEXTS) for text in TOXIC_FORUM_TEXTS[language]
    ]
    board_posts += [("en", text) for text in rng.sample(list(news_texts), 8)]
    board_posts += [("misc", text) for text in SHORT_FORUM_TEXTS]
    rng.shuffle(board_posts)
    lines: list[Line] = [
        {"text": text, "source": "forum", "board": f"{board}.general", "url": "https://forum.example.org/t"}
        for board, text in board_posts
    ]
    lines.insert(37, b'{"text": "lol this post got cut off because the server')
    lines.insert(91, b'{"text": "Sch\xf6ne Gr\xfc\xdfe aus M\xfcnchen \xff", "source": "forum"}')
    return _numbered(lines, "forum")


def web_crawl_parquet(rng: random.Random, news_texts: Sequence[str], forum_texts: Sequence[str]) -> bytes:
    """`web_crawl.parquet`: formal English pages, a few copies of JSONL documents, null and empty rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    pools = [ENCYCLOPEDIA_SENTENCES]
    documents = _compose_documents(rng, 90, pools, _news_sentences(), (4, 10), max_overlap=0.34)
    pages: list[tuple[str | None, str]] = [(" ".join(sentences), "wiki") for _, sentences in documents]
    copies = rng.sample(list(news_texts), 4) + rng.sample(list(forum_texts), 2)
    planted: list[tuple[int, tuple[str | None, str]]] = [
        (rng.randrange(len(pages)), (text, "mirror")) for text in copies
    ]
    planted += [(rng.randrange(len(pages)), (text, "blank")) for text in (None, None, "", "")]
    rows = _plant_after(rng, pages, planted)

    table = pa.table(
        {
            "text": pa.array([text for text, _ in rows], type=pa.string()),
            "url": pa.array([f"https://{site}.example.net/page/{n:04d}" for n, (_, site) in enumerate(rows)]),
            "crawl_date": pa.array(
                [f"2024-{1 + n % 12:02d}-{1 + (n * 7) % 28:02d}" for n in range(len(rows))]
            ),
        }
    )
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return bytes(sink.getvalue().to_pybytes())
