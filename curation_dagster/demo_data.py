"""The bundled demo landing zone: small, deterministic shards with planted problems for every stage.

Text, image, audio and video shards are generated from fixed seeds, so every run on every machine with
the same package versions writes byte-identical files. Each shard plants duplicates, near duplicates,
corrupt records and low-quality items so that raw parsing, dedup and filtering all visibly reject rows.
"""

from __future__ import annotations

import gzip
import io
import json
import math
import os
import random
import shutil
import tarfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from curation_dagster.media import H264_VIDEO, encode_mp4

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

NEWS_SHARD = "news_en.jsonl"
FORUM_SHARD = "forum_multilang.jsonl.gz"
WEB_SHARD = "web_crawl.parquet"
IMAGES_SHARD = "images_000.tar"
MEDIA_SHARD = "media_001"

DEMO_SHARD_NAMES: tuple[str, ...] = (NEWS_SHARD, FORUM_SHARD, WEB_SHARD, IMAGES_SHARD, MEDIA_SHARD)
"""Every shard `generate_demo_landing` writes, each a file or folder directly in the landing zone."""

AUDIO_SAMPLE_RATE = 16_000

T = TypeVar("T")

NEWS_SENTENCES: dict[str, tuple[str, ...]] = {
    "science": (
        "Astronomers have detected water vapour in the atmosphere of a planet orbiting a nearby red dwarf star.",
        "The new telescope can resolve details on the surface of the Moon as small as a parked car.",
        "Researchers at the university sequenced the genome of a rare orchid that flowers only once a decade.",
        "A team of geologists found evidence that the valley was covered by a glacier twelve thousand years ago.",
        "The experiment measured the mass of the particle with a precision never reached before.",
        "Marine biologists tagged forty sea turtles to learn where they spend the winter months.",
        "Fossilised footprints suggest that small dinosaurs travelled in groups along the ancient shoreline.",
        "The study followed two thousand volunteers for ten years and tracked how much they slept each night.",
        "Chemists developed a catalyst that splits water into hydrogen and oxygen using only sunlight.",
        "Satellite images show that the ice shelf lost an area the size of a small city during the summer.",
        "The probe will spend six months mapping the magnetic field of the gas giant before its mission ends.",
        "Scientists cautioned that the results still need to be confirmed by independent laboratories.",
    ),
    "cities": (
        "The city council approved a plan to turn the old railway yard into a public park with a lake.",
        "Commuters will be able to use the new tram line from the central station to the airport next spring.",
        "Rents in the historic district rose by nine percent over the past year, according to the housing office.",
        "The mayor said that three hundred new trees will be planted along the main avenue this autumn.",
        "A pedestrian bridge over the river is expected to shorten the walk to the market by ten minutes.",
        "Residents complained that the construction work on the square begins too early in the morning.",
        "The public library reopened after a two-year renovation with a rooftop reading garden.",
        "Bike lanes on the ring road will be separated from traffic by a low concrete barrier.",
        "The night bus network now covers the northern suburbs, which were poorly connected until now.",
        "Officials estimate that the harbour redevelopment will create around two thousand jobs.",
        "Street lights in the old town are being replaced with energy-saving lamps that dim after midnight.",
        "The neighbourhood association organised a clean-up day that collected four tonnes of rubbish.",
    ),
    "sport": (
        "The home team scored twice in the final ten minutes to win the match three goals to one.",
        "She finished the marathon in two hours and twenty-one minutes, a new course record.",
        "The coach praised his young defenders for staying calm under pressure for the whole second half.",
        "Heavy rain delayed the tennis final by almost three hours before play could resume.",
        "The cycling team lost its leader after a crash on the descent in the closing stage.",
        "Tickets for the season opener sold out within forty minutes of going on sale.",
        "The swimmer broke the national record in the two hundred metres freestyle on Friday night.",
        "After a difficult start to the season, the club has now won five games in a row.",
        "The captain announced that he will retire from international football at the end of the year.",
        "A late penalty decided the semi-final, which had been evenly balanced for most of the evening.",
        "The basketball league will expand to sixteen teams from next season onwards.",
        "Local runners trained through the winter for the relay race along the river path.",
    ),
    "cooking": (
        "Roast the peppers until the skins blister, then let them rest in a covered bowl for ten minutes.",
        "A pinch of salt in the caramel brings out the sweetness and balances the bitterness of the sugar.",
        "The chef recommends soaking the beans overnight and cooking them slowly with a bay leaf.",
        "Fresh pasta needs only a few minutes in boiling water, so taste it early and often.",
        "Toast the spices in a dry pan until they smell fragrant before grinding them.",
        "The bakery on the corner sells a sourdough loaf that is fermented for two full days.",
        "Add the butter in small pieces and keep stirring so the sauce stays smooth and glossy.",
        "Leftover rice makes the best fried rice because the grains have dried out a little.",
        "Autumn is the season for pumpkin soup, roasted chestnuts and baked apples with cinnamon.",
        "Let the meat rest for a few minutes after cooking so that the juices settle.",
        "A squeeze of lemon just before serving lifts the flavour of almost any vegetable dish.",
        "The cookbook collects recipes from grandmothers in twelve villages along the coast.",
    ),
    "technology": (
        "The company released an update that reduces the battery drain of its phones while in standby.",
        "Engineers are testing a chip that runs speech recognition without an internet connection.",
        "The open source project reached version two after three years of work by volunteers.",
        "Security researchers found a flaw that let attackers read messages on unpatched routers.",
        "The new laptop weighs less than a kilogram and lasts a full working day on one charge.",
        "Many small shops now accept contactless payments through a simple card reader on the counter.",
        "The data centre is cooled with water from the lake, which cuts its energy use by a third.",
        "Developers can now run the database on a single board computer the size of a credit card.",
        "The electric van can carry a tonne of parcels and recharges in under an hour.",
        "A software bug caused the ticket machines at several stations to reject valid cards on Monday.",
        "The robot vacuum maps each room and avoids cables and socks lying on the floor.",
        "Experts advise users to enable two-factor authentication on their email accounts.",
    ),
    "weather": (
        "Forecasters expect a band of heavy rain to cross the region on Tuesday afternoon.",
        "Temperatures will drop below freezing overnight, so drivers should watch for icy roads.",
        "The summer was the driest in forty years, and several rivers reached record low levels.",
        "Strong winds brought down branches and cut power to around two thousand homes.",
        "A warm front will bring mild air and clear skies for most of the weekend.",
        "Fog is likely in the valleys early in the morning but should lift by midday.",
        "The weather service issued a warning for thunderstorms with hail in the mountains.",
        "Snow fell on the hills for the first time this season, much earlier than usual.",
        "Humidity will remain high, and afternoon showers are possible along the coast.",
        "The spring has been unusually cold, delaying the cherry blossom by almost two weeks.",
        "Pollen counts are expected to be high on Thursday as the grass begins to flower.",
        "Meteorologists say the dry spell should end when the wind turns to the west.",
    ),
    "health": (
        "Doctors recommend at least thirty minutes of moderate exercise on most days of the week.",
        "The clinic extended its opening hours so that patients can visit after work.",
        "A new vaccination campaign will offer free flu shots to everyone over sixty.",
        "Drinking enough water matters most on hot days and during long journeys.",
        "The hospital opened a children's ward with bright rooms and a small playground.",
        "Nurses said that the new scheduling system has reduced the waiting time in the emergency room.",
        "Walking to work instead of driving can lower blood pressure over a few months.",
        "Researchers found that people who eat more vegetables tend to sleep better.",
        "The pharmacy will deliver prescriptions to elderly residents who cannot leave their homes.",
        "Regular breaks from the screen help to prevent tired eyes and headaches.",
        "The health ministry plans to train five hundred additional family doctors by next year.",
        "A short walk after a meal helps the body to regulate its blood sugar.",
    ),
}
"""English news sentences by topic; demo news documents are drawn from these."""

ENCYCLOPEDIA_SENTENCES: tuple[str, ...] = (
    "The river rises in the northern highlands and flows for about four hundred kilometres to the sea.",
    "The cathedral was built over two centuries and combines Romanesque and Gothic elements.",
    "Honey bees communicate the direction and distance of food sources through a waggle dance.",
    "The treaty established the border between the two kingdoms and remained in force until 1815.",
    "Copper is an excellent conductor of heat and electricity and has been used since prehistoric times.",
    "The island has a subtropical climate with warm summers and mild, wet winters.",
    "The composer wrote nine symphonies, several operas and a large number of chamber works.",
    "Photosynthesis converts light energy into chemical energy stored in sugars.",
    "The population of the province was estimated at 1.2 million inhabitants in the last census.",
    "The bridge was the longest suspension bridge in the world when it opened to traffic.",
    "Oak trees can live for several hundred years and support a wide variety of insects.",
    "The university was founded in 1425 and is one of the oldest in the region.",
    "The mountain range forms a natural barrier between the coastal plain and the interior plateau.",
    "The painting depicts a harbour scene at dawn, with fishing boats returning to shore.",
    "Granite is an igneous rock composed mainly of quartz, feldspar and mica.",
    "The language belongs to the Romance family and is spoken by around ten million people.",
    "The railway line was electrified in the 1950s and later extended to the border.",
    "Migratory birds use the wetlands as a resting place on their journey between continents.",
    "The museum holds a collection of more than twenty thousand coins from antiquity to the present day.",
    "The species is found in dry forests and grasslands at altitudes of up to two thousand metres.",
    "The constitution divides power between the parliament, the government and the courts.",
    "Wheat was first cultivated in the Fertile Crescent around ten thousand years ago.",
    "The lighthouse stands on a rocky headland and was automated in the 1980s.",
    "The festival takes place every August and attracts performers from many countries.",
    "The lake is fed by glacial meltwater, which gives it a distinctive turquoise colour.",
    "The town developed around a medieval market and still holds a weekly fair on its main square.",
    "Sound travels faster in water than in air, at roughly fifteen hundred metres per second.",
    "The novel follows three generations of a family of weavers in a small industrial town.",
    "The castle was rebuilt in the sixteenth century after a fire destroyed most of the east wing.",
    "The volcano last erupted in 1902 and is now monitored by a network of seismic stations.",
)
"""Formal, encyclopedic English sentences for the web-crawl shard."""

FORUM_SENTENCES: dict[str, tuple[str, ...]] = {
    "en": (
        "lol I tried that recipe last night and it actually worked :)",
        "Honestly I don't get why everyone's so hyped about this phone.",
        "Anyone know if the bus still runs after midnight on weekends?",
        "Thanks a lot, that fixed it for me!",
        "I've been waiting three weeks for my parcel and it's still not here :(",
        "Tbh the second season was way better than the first one.",
        "Just got back from the mountains, the view was insane.",
        "Can't believe they raised the ticket prices again lol.",
        "My cat knocked my coffee over the keyboard this morning, great start to the day.",
        "Has anybody here tried running the app on an older laptop?",
        "Same here, mine crashed twice yesterday.",
        "I'd recommend the small cafe near the station, their soup is great.",
        "We're planning a trip to the coast next month, any tips?",
        "Nope, you need to restart the router first and then wait a minute.",
        "That game last night was so stressful haha.",
        "I'm pretty sure the shop closes at six on Saturdays.",
        "Ok I give up, I'll just buy a new charger.",
        "You're right, I totally forgot about the deadline :D",
        "Does anyone still use paper maps or is it just me?",
        "Our neighbour's dog barks every time the postman comes lol.",
        "Idk, the reviews look good but the price is kind of steep.",
        "Finally finished the puzzle, only took me a whole weekend.",
        "It's raining again, so much for the barbecue.",
        "Great thread, learned a lot from this, cheers!",
        "Wait, they changed the opening hours without telling anyone?",
    ),
    "de": (
        "Haha, genau das gleiche ist mir letzte Woche auch passiert.",
        "Weiß jemand, ob der Laden am Sonntag offen hat?",
        "Ich hab's gestern ausprobiert und es hat super geklappt :)",
        "Ehrlich gesagt finde ich die neue Version total unübersichtlich.",
        "Danke für den Tipp, das hat mir echt geholfen!",
        "Bei uns regnet es schon seit drei Tagen ununterbrochen.",
        "Kann mir jemand ein gutes Rezept für Apfelkuchen empfehlen?",
        "Mein Zug hatte heute schon wieder zwanzig Minuten Verspätung.",
        "Lol, ich hab den Schlüssel die ganze Zeit in der Jackentasche gehabt.",
        "Wir fahren nächste Woche an die Ostsee, hat jemand einen Tipp für ein Café?",
        "Das Spiel gestern war echt spannend bis zur letzten Minute.",
        "Ich glaub, du musst erst das Update installieren, dann geht's.",
        "Meine Katze schläft den ganzen Tag auf der Heizung :D",
        "Hat schon mal jemand den neuen Radweg am Fluss ausprobiert?",
        "Kein Plan, warum das bei mir nicht funktioniert.",
        "Ich finde, die Preise sind in den letzten Monaten ganz schön gestiegen.",
        "Gestern war ich auf dem Flohmarkt und hab eine alte Kamera gefunden.",
        "Stimmt, das hatte ich total vergessen, sorry!",
        "Das Wetter am Wochenende soll ja endlich besser werden.",
        "Am besten fragst du mal direkt beim Kundenservice nach.",
        "Mein Handy macht seit dem Update ständig komische Geräusche.",
        "Wer kommt morgen mit zum Konzert im Park?",
        "Ich koche heute Abend Linsensuppe, das ist perfekt bei dem Wetter.",
        "Puh, die Prüfung war echt schwerer als gedacht.",
        "Super Thread, hab viel gelernt, danke euch allen!",
    ),
    "fr": (
        "Mdr, c'est exactement ce qui m'est arrivé hier soir.",
        "Quelqu'un sait si la boulangerie est ouverte le dimanche ?",
        "J'ai testé ta recette et c'était trop bon :)",
        "Franchement, je comprends pas pourquoi tout le monde en parle.",
        "Merci beaucoup, ça m'a vraiment aidé !",
        "Il pleut depuis trois jours chez nous, j'en peux plus.",
        "Vous auriez une bonne adresse pour manger à Lyon ?",
        "Mon train a encore eu une demi-heure de retard ce matin.",
        "J'ai cherché mes clés partout et elles étaient dans ma poche lol.",
        "On part en Bretagne la semaine prochaine, des conseils ?",
        "Le match d'hier soir était vraiment incroyable.",
        "Je crois qu'il faut d'abord mettre à jour l'application.",
        "Mon chat dort toute la journée sur le canapé :D",
        "Quelqu'un a déjà essayé la nouvelle piste cyclable le long du canal ?",
        "Aucune idée, chez moi ça marche pas non plus.",
        "Les prix ont beaucoup augmenté ces derniers mois, c'est fou.",
        "Ce week-end j'ai trouvé un vieux vélo au vide-grenier.",
        "Ah oui, j'avais complètement oublié, désolé !",
        "Il paraît qu'il va faire beau samedi, enfin.",
        "Le mieux, c'est de contacter directement le service client.",
        "Depuis la mise à jour, mon téléphone redémarre tout seul.",
        "Qui vient au concert dans le parc demain soir ?",
        "Ce soir je fais une soupe de légumes, parfait avec ce temps.",
        "L'examen était beaucoup plus difficile que prévu, ouf.",
        "Super discussion, j'ai appris plein de trucs, merci à tous !",
    ),
    "es": (
        "Jaja, me pasó exactamente lo mismo la semana pasada.",
        "¿Alguien sabe si la farmacia abre los domingos?",
        "Probé tu receta ayer y salió buenísima :)",
        "La verdad es que no entiendo por qué todo el mundo habla de eso.",
        "¡Muchas gracias, me ayudó un montón!",
        "Aquí llueve desde hace tres días sin parar.",
        "¿Me recomendáis algún sitio para comer en Valencia?",
        "Mi tren llegó otra vez con veinte minutos de retraso.",
        "Busqué las llaves por toda la casa y estaban en mi bolsillo jaja.",
        "Nos vamos a la playa el mes que viene, ¿algún consejo?",
        "El partido de anoche fue muy emocionante hasta el final.",
        "Creo que primero tienes que actualizar la aplicación.",
        "Mi gato se pasa el día durmiendo en el sofá :D",
        "¿Alguien ha probado el nuevo carril bici junto al río?",
        "Ni idea, a mí tampoco me funciona.",
        "Los precios han subido muchísimo en los últimos meses.",
        "El sábado encontré una cámara antigua en el mercadillo.",
        "Es verdad, se me había olvidado por completo, perdón.",
        "Dicen que el fin de semana por fin va a hacer buen tiempo.",
        "Lo mejor es que llames directamente al servicio de atención al cliente.",
        "Desde la actualización mi móvil se reinicia solo.",
        "¿Quién viene mañana al concierto en el parque?",
        "Esta noche hago sopa de lentejas, perfecta con este frío.",
        "Uf, el examen fue mucho más difícil de lo que pensaba.",
        "¡Qué buen hilo, he aprendido un montón, gracias a todos!",
    ),
}
"""Colloquial forum sentences per language (English, German, French, Spanish)."""

TOXIC_NEWS_TEXTS: tuple[str, ...] = (
    "You are a stupid idiot if you believe a single word of this article. Shut up, moron.",
    "What a pathetic piece of garbage. The author is a brainless clown and everyone who reads this is an idiot.",
    "Shut up, moron. Nobody cares about your worthless opinion, you ignorant fool.",
    "The reporter is a lying idiot and a total loser. Go away, you stupid jerk.",
    "Only a complete imbecile would write this trash. You are dumb, useless and pathetic.",
)
"""Mildly toxic English comments planted in the news shard."""

TOXIC_FORUM_TEXTS: dict[str, tuple[str, ...]] = {
    "en": (
        "Shut up, moron, nobody asked you.",
        "You're a stupid idiot and your posts are garbage lol.",
    ),
    "de": (
        "Halt die Klappe, du Idiot, keiner will deine dummen Kommentare lesen.",
        "Du bist so ein dummer Vollidiot, echt peinlich.",
    ),
    "fr": (
        "Ferme-la, espèce d'imbécile, personne ne t'a rien demandé.",
        "T'es vraiment un crétin, tes messages sont nuls.",
    ),
    "es": (
        "Cállate, idiota, nadie te ha preguntado.",
        "Eres un estúpido y un imbécil, tus comentarios son basura.",
    ),
}
"""Mildly toxic forum posts, two per language."""

BOILERPLATE_TEXTS: tuple[str, ...] = (
    "We use cookies to improve your experience on our website.\n"
    "By continuing to browse this site you agree to our use of cookies.\n"
    "Accept all cookies\nManage preferences\nPrivacy policy\nTerms of use",
    "Subscribe to our newsletter!\nGet the latest news delivered to your inbox every morning.\n"
    "Enter your email address\nSubscribe\n© 2024 Example Media Group. All rights reserved.",
    "Home | News | Sport | Weather | Contact\nPlease enable JavaScript to view this page.\n"
    "Click here to read more\nAll rights reserved.",
    "This article is only available to subscribers.\nSubscribe now for just 1 euro for the first month.\n"
    "Already a subscriber? Log in\nTerms and conditions apply. All rights reserved.",
    "Share this article\nFacebook\nTwitter\nEmail\nPrint\n"
    "Sign up for our newsletter to receive updates.\nCookie settings\nAll rights reserved.",
)
"""Navigation, cookie and newsletter boilerplate planted in the news shard."""

SHORT_TEXTS: tuple[str, ...] = (
    "Breaking news",
    "Read more",
    "Weather update today",
    "Sport",
    "Photo gallery",
)
"""Documents of one to three words, too short to keep."""

SHORT_FORUM_TEXTS: tuple[str, ...] = ("lol", "+1", "danke!", "merci :)", "jaja", "same")
"""Forum posts too short to keep."""

WORD_SUBSTITUTES: tuple[str, ...] = (
    "remarkable",
    "several",
    "northern",
    "quickly",
    "recently",
    "modest",
    "enormous",
    "local",
    "quiet",
    "careful",
    "ancient",
    "modern",
    "official",
    "popular",
)
"""Replacement words used to make near duplicates."""


@dataclass(frozen=True)
class EncodedImage:
    """One encoded picture of the image shard, with the caption that describes it."""

    data: bytes
    extension: str
    caption: str


@dataclass(frozen=True)
class Picture:
    """A drawn picture before encoding, with its caption."""

    image: Image.Image
    caption: str


def generate_demo_landing(landing: Path) -> list[Path]:
    """Write every demo shard into `landing`, replacing earlier ones, and return their paths sorted."""
    landing.mkdir(parents=True, exist_ok=True)
    news_documents = _news_documents(random.Random(101))
    forum_posts = _forum_posts(random.Random(202))
    _write_atomic(landing / NEWS_SHARD, _jsonl_bytes(_news_records(random.Random(102), news_documents)))
    forum_records = _forum_records(random.Random(203), forum_posts, [text for _, text in news_documents])
    _write_atomic(landing / FORUM_SHARD, _gzip_bytes(_jsonl_bytes(forum_records)))
    news_texts = [text for _, text in news_documents]
    _write_atomic(landing / WEB_SHARD, _web_crawl_parquet(random.Random(303), news_texts, forum_posts["en"]))
    pictures = _pictures()
    _write_atomic(landing / IMAGES_SHARD, _image_tar(pictures))
    _write_folder_atomic(landing / MEDIA_SHARD, _media_files(pictures))
    return sorted(landing / name for name in DEMO_SHARD_NAMES)


def demo_landing_is_complete(landing: Path) -> bool:
    """True when every demo shard exists in `landing`."""
    return all((landing / name).exists() for name in DEMO_SHARD_NAMES)


# Writing


def _write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to a hidden temporary sibling of `path`, then rename it over `path`."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    temporary.write_bytes(data)
    os.replace(temporary, path)


def _write_folder_atomic(path: Path, files: dict[str, bytes]) -> None:
    """Write `files` (relative path to bytes) into a hidden temporary folder, then swap it in for `path`."""
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if temporary.exists():
        shutil.rmtree(temporary)
    for relative, data in sorted(files.items()):
        target = temporary / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    if path.exists():
        shutil.rmtree(path)
    os.replace(temporary, path)


Line = dict[str, Any] | list[Any] | bytes
"""One JSONL line: a JSON object, another JSON value, or raw bytes written verbatim (corrupt lines)."""


def _jsonl_bytes(lines: Iterable[Line]) -> bytes:
    """Encode lines as JSON lines, writing `bytes` lines verbatim."""
    encoded = [
        line if isinstance(line, bytes) else json.dumps(line, ensure_ascii=False).encode("utf-8")
        for line in lines
    ]
    return b"\n".join(encoded) + b"\n"


def _gzip_bytes(data: bytes) -> bytes:
    """Gzip `data` with no file name and a zero timestamp in the header."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, compresslevel=9, mtime=0) as stream:
        stream.write(data)
    return buffer.getvalue()


def _tar_bytes(members: dict[str, bytes]) -> bytes:
    """A ustar archive of `members` in name order, with zero timestamps and owners."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as archive:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            info.mtime = 0
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            archive.addfile(info, io.BytesIO(members[name]))
    return buffer.getvalue()


def _random_bytes(seed: int, size: int) -> bytes:
    """Deterministic noise bytes, used as the content of corrupt media files."""
    return random.Random(seed).randbytes(size)


# Text shards


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


def _news_documents(rng: random.Random) -> list[tuple[str, str]]:
    """The clean news documents as (topic, text), 3 to 12 sentences each."""
    topics = sorted(NEWS_SENTENCES)
    pools = [NEWS_SENTENCES[topic] for topic in topics]
    documents = _compose_documents(rng, 110, pools, _news_sentences(), (3, 12), max_overlap=0.34)
    return [(topics[index], " ".join(sentences)) for index, sentences in documents]


def _news_records(rng: random.Random, documents: Sequence[tuple[str, str]]) -> list[Line]:
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


def _forum_posts(rng: random.Random) -> dict[str, list[str]]:
    """Clean colloquial forum posts by language, 2 to 4 sentences each."""
    posts: dict[str, list[str]] = {}
    for language in sorted(FORUM_SENTENCES):
        pools = [FORUM_SENTENCES[language]]
        documents = _compose_documents(rng, 32, pools, (), (2, 4), max_overlap=0.25)
        posts[language] = [" ".join(sentences) for _, sentences in documents]
    return posts


def _forum_records(rng: random.Random, posts: dict[str, list[str]], news_texts: Sequence[str]) -> list[Line]:
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


def _web_crawl_parquet(rng: random.Random, news_texts: Sequence[str], forum_texts: Sequence[str]) -> bytes:
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


# Pictures


Color = tuple[int, int, int]

COLORS: dict[str, Color] = {
    "red": (214, 39, 40),
    "orange": (255, 127, 14),
    "yellow": (240, 210, 40),
    "green": (44, 160, 44),
    "dark green": (20, 90, 30),
    "sky blue": (135, 200, 235),
    "blue": (31, 90, 200),
    "navy": (15, 25, 80),
    "purple": (128, 60, 170),
    "pink": (240, 130, 190),
    "brown": (120, 75, 35),
    "white": (250, 250, 250),
    "light grey": (210, 210, 210),
    "grey": (128, 128, 128),
    "black": (10, 10, 10),
    "sand": (230, 205, 150),
}
"""Named colours used in drawings and their captions."""


def _gradient(size: tuple[int, int], start: Color, end: Color, horizontal: bool = False) -> Image.Image:
    """A linear two-colour gradient, top to bottom or left to right."""
    import numpy as np
    from PIL import Image

    width, height = size
    steps = np.linspace(0.0, 1.0, width if horizontal else height)[:, None]
    line = (1.0 - steps) * np.array(start, dtype=float) + steps * np.array(end, dtype=float)
    grid = line[None, :, :] if horizontal else line[:, None, :]
    pixels = np.broadcast_to(grid, (height, width, 3)).round().astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _shape_on_gradient(
    size: tuple[int, int], shape: str, color: str, top: str, bottom: str, horizontal: bool
) -> Picture:
    """One large shape, left of centre, on a gradient background."""
    from PIL import ImageDraw

    image = _gradient(size, COLORS[top], COLORS[bottom], horizontal)
    draw = ImageDraw.Draw(image)
    width, height = size
    side = 0.6 * min(size)
    box = (width * 0.1, height * 0.3, width * 0.1 + side, height * 0.3 + side)
    if shape == "circle":
        draw.ellipse(box, fill=COLORS[color])
    elif shape == "square":
        draw.rectangle(box, fill=COLORS[color])
    else:
        draw.polygon(
            [(box[0], box[3]), ((box[0] + box[2]) / 2, box[1]), (box[2], box[3])], fill=COLORS[color]
        )
    direction = "left to right" if horizontal else "top to bottom"
    return Picture(image, f"A large {color} {shape} on a gradient from {top} to {bottom}, {direction}.")


def _hazard_stripes(size: tuple[int, int], first: str, second: str, count: int) -> Picture:
    """Diagonal warning stripes of two alternating colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[first])
    draw = ImageDraw.Draw(image)
    width, height = size
    span = (width + height) / count
    for index in range(0, count, 2):
        start = index * span
        draw.polygon(
            [(start, 0), (start + span, 0), (start + span - height, height), (start - height, height)],
            fill=COLORS[second],
        )
    return Picture(image, f"Diagonal {first} and {second} warning stripes.")


def _apple_on_tablecloth(size: tuple[int, int], cloth: str) -> Picture:
    """A red apple on a checked tablecloth in front of a plain wall."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sand"])
    draw = ImageDraw.Draw(image)
    width, height = size
    cells, top = 6, height * 0.45
    cell_width, cell_height = width / cells, (height - top) / 3
    for row in range(3):
        for column in range(cells):
            color = COLORS[cloth] if (row + column) % 2 else COLORS["white"]
            left, upper = column * cell_width, top + row * cell_height
            draw.rectangle((left, upper, left + cell_width, upper + cell_height), fill=color)
    draw.ellipse((width * 0.52, height * 0.3, width * 0.86, height * 0.64), fill=COLORS["red"])
    draw.rectangle((width * 0.68, height * 0.22, width * 0.7, height * 0.32), fill=COLORS["brown"])
    draw.ellipse((width * 0.7, height * 0.2, width * 0.8, height * 0.26), fill=COLORS["green"])
    return Picture(image, f"A red apple on a {cloth} and white checked tablecloth.")


def _rings(size: tuple[int, int], first: str, second: str, count: int) -> Picture:
    """Concentric rings of two alternating colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[second])
    draw = ImageDraw.Draw(image)
    centre_x, centre_y = size[0] * 0.6, size[1] * 0.45
    largest = max(size) * 0.7
    for index in range(count):
        radius = largest * (count - index) / count
        color = COLORS[first] if index % 2 == 0 else COLORS[second]
        draw.ellipse((centre_x - radius, centre_y - radius, centre_x + radius, centre_y + radius), fill=color)
    return Picture(image, f"Concentric {first} and {second} rings, slightly off centre.")


def _landscape(size: tuple[int, int], sky: str, hills: str, sun: str) -> Picture:
    """Sun above rolling hills under a sky gradient."""
    from PIL import ImageDraw

    image = _gradient(size, COLORS[sky], COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.65, height * 0.1, width * 0.9, height * 0.1 + width * 0.25), fill=COLORS[sun])
    draw.ellipse((-width * 0.3, height * 0.55, width * 0.7, height * 1.5), fill=COLORS[hills])
    draw.ellipse((width * 0.35, height * 0.65, width * 1.4, height * 1.6), fill=COLORS["dark green"])
    return Picture(image, f"A {sun} sun above {hills} hills under a {sky} sky.")


def _house(size: tuple[int, int], wall: str, roof: str) -> Picture:
    """A small house with a pitched roof and a door, on grass under a blue sky."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sky blue"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, height * 0.75, width, height), fill=COLORS["green"])
    draw.rectangle((width * 0.25, height * 0.45, width * 0.75, height * 0.8), fill=COLORS[wall])
    draw.polygon(
        [(width * 0.18, height * 0.47), (width * 0.5, height * 0.18), (width * 0.82, height * 0.47)],
        fill=COLORS[roof],
    )
    draw.rectangle((width * 0.44, height * 0.6, width * 0.56, height * 0.8), fill=COLORS["brown"])
    return Picture(image, f"A small {wall} house with a {roof} roof on green grass.")


def _tree(size: tuple[int, int], background: str) -> Picture:
    """A single tree with a round crown."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((width * 0.45, height * 0.5, width * 0.55, height * 0.95), fill=COLORS["brown"])
    draw.ellipse((width * 0.2, height * 0.08, width * 0.8, height * 0.62), fill=COLORS["dark green"])
    return Picture(image, f"A single tree with a round dark green crown against a {background} background.")


def _night_sky(size: tuple[int, int], seed: int) -> Picture:
    """A crescent moon and scattered stars on a dark sky."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, COLORS["navy"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for _ in range(60):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        draw.ellipse((x, y, x + 2, y + 2), fill=COLORS["white"])
    draw.ellipse(
        (width * 0.15, height * 0.15, width * 0.5, height * 0.15 + width * 0.35), fill=COLORS["yellow"]
    )
    draw.ellipse((width * 0.24, height * 0.1, width * 0.59, height * 0.1 + width * 0.35), fill=COLORS["navy"])
    return Picture(image, "A yellow crescent moon and small white stars in a dark night sky.")


def _striped_flag(size: tuple[int, int], canton: str, stripe: str) -> Picture:
    """A flag with horizontal stripes and a coloured canton holding white dots."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    band = height / 7
    for index in range(0, 7, 2):
        draw.rectangle((0, index * band, width, (index + 1) * band - 1), fill=COLORS[stripe])
    draw.rectangle((0, 0, width * 0.45, band * 4 - 1), fill=COLORS[canton])
    for row in range(3):
        for column in range(4):
            x, y = width * (0.06 + 0.1 * column), band * (0.7 + 1.2 * row)
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=COLORS["white"])
    return Picture(image, f"A flag with {stripe} and white stripes and a {canton} corner with white dots.")


def _mountains(size: tuple[int, int], sky: str) -> Picture:
    """Snow-capped mountains under an evening sky."""
    from PIL import ImageDraw

    image = _gradient(size, COLORS[sky], COLORS["pink"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for left, peak, right, tip in ((-0.2, 0.3, 0.8, 0.2), (0.35, 0.7, 1.2, 0.35)):
        base, top = (width * left, height), (width * peak, height * tip)
        draw.polygon([base, top, (width * right, height)], fill=COLORS["grey"])
        snow = 0.18
        draw.polygon(
            [
                top,
                (top[0] - (top[0] - base[0]) * snow, top[1] + (height - top[1]) * snow),
                (top[0] + (width * right - top[0]) * snow, top[1] + (height - top[1]) * snow),
            ],
            fill=COLORS["white"],
        )
    return Picture(image, f"Two snow-capped grey mountains under a {sky} and pink evening sky.")


def _balloons(size: tuple[int, int]) -> Picture:
    """Three balloons on strings against the sky."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["sky blue"])
    draw = ImageDraw.Draw(image)
    width, height = size
    for x, y, color in ((0.25, 0.3, "red"), (0.5, 0.18, "yellow"), (0.72, 0.36, "purple")):
        cx, cy = width * x, height * y
        draw.line((cx, cy + height * 0.14, width * 0.5, height * 0.95), fill=COLORS["black"], width=1)
        draw.ellipse(
            (cx - width * 0.11, cy - height * 0.14, cx + width * 0.11, cy + height * 0.14), fill=COLORS[color]
        )
    return Picture(image, "Red, yellow and purple balloons on strings against a light blue sky.")


def _pie_chart(size: tuple[int, int]) -> Picture:
    """A pie chart with four slices on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    box = (width * 0.1, height * 0.1, width * 0.9, height * 0.9)
    start = 0.0
    for share, color in ((0.4, "blue"), (0.25, "orange"), (0.2, "green"), (0.15, "red")):
        draw.pieslice(box, start, start + 360 * share, fill=COLORS[color])
        start += 360 * share
    return Picture(image, "A pie chart with blue, orange, green and red slices on a white background.")


def _fish(size: tuple[int, int]) -> Picture:
    """An orange fish and bubbles in blue water."""
    from PIL import ImageDraw

    image = _gradient(size, COLORS["sky blue"], COLORS["navy"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.3, height * 0.4, width * 0.75, height * 0.65), fill=COLORS["orange"])
    draw.polygon(
        [(width * 0.32, height * 0.52), (width * 0.12, height * 0.38), (width * 0.12, height * 0.66)],
        fill=COLORS["orange"],
    )
    draw.ellipse((width * 0.64, height * 0.46, width * 0.68, height * 0.5), fill=COLORS["black"])
    for x, y, radius in ((0.8, 0.35, 4), (0.84, 0.25, 6), (0.79, 0.14, 5)):
        draw.ellipse(
            (width * x - radius, height * y - radius, width * x + radius, height * y + radius),
            outline=COLORS["white"],
            width=2,
        )
    return Picture(image, "An orange fish swimming in deep blue water with a few bubbles.")


def _smiley(size: tuple[int, int], background: str) -> Picture:
    """A yellow smiley face."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.ellipse((width * 0.15, height * 0.15, width * 0.85, height * 0.85), fill=COLORS["yellow"])
    draw.ellipse((width * 0.33, height * 0.35, width * 0.42, height * 0.47), fill=COLORS["black"])
    draw.ellipse((width * 0.58, height * 0.35, width * 0.67, height * 0.47), fill=COLORS["black"])
    draw.arc((width * 0.3, height * 0.35, width * 0.7, height * 0.7), 20, 160, fill=COLORS["black"], width=4)
    return Picture(image, f"A yellow smiley face on a {background} background.")


def _skyline(size: tuple[int, int], seed: int) -> Picture:
    """A city skyline of dark buildings with lit windows at dusk."""
    from PIL import ImageDraw

    rng = random.Random(seed)
    image = _gradient(size, COLORS["navy"], COLORS["orange"])
    draw = ImageDraw.Draw(image)
    width, height = size
    x = 0.0
    while x < width:
        building_width = rng.uniform(0.1, 0.2) * width
        top = rng.uniform(0.3, 0.7) * height
        draw.rectangle((x, top, x + building_width - 2, height), fill=COLORS["black"])
        for wy in range(int(top) + 6, height - 6, 10):
            for wx in range(int(x) + 4, int(x + building_width) - 6, 8):
                if rng.random() < 0.4:
                    draw.rectangle((wx, wy, wx + 3, wy + 4), fill=COLORS["yellow"])
        x += building_width
    return Picture(image, "A city skyline of dark buildings with lit windows against an orange dusk sky.")


def _scattered_shapes(size: tuple[int, int], seed: int) -> Picture:
    """Several circles and squares in assorted colours at random places."""
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    image = Image.new("RGB", size, COLORS["light grey"])
    draw = ImageDraw.Draw(image)
    width, height = size
    palette = ["red", "blue", "green", "orange", "purple"]
    for index in range(6):
        radius = rng.uniform(0.08, 0.16) * width
        x, y = rng.uniform(radius, width - radius), rng.uniform(radius, height - radius)
        box = (x - radius, y - radius, x + radius, y + radius)
        color = COLORS[palette[index % len(palette)]]
        (draw.ellipse if index % 2 == 0 else draw.rectangle)(box, fill=color)
    return Picture(image, "Three circles and three squares in assorted colours on a light grey background.")


def _sailboat(size: tuple[int, int]) -> Picture:
    """A sailboat on the sea below a pale sky."""
    from PIL import ImageDraw

    image = _gradient(size, COLORS["sky blue"], COLORS["white"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((0, height * 0.62, width, height), fill=COLORS["blue"])
    draw.polygon(
        [
            (width * 0.25, height * 0.62),
            (width * 0.75, height * 0.62),
            (width * 0.65, height * 0.74),
            (width * 0.35, height * 0.74),
        ],
        fill=COLORS["brown"],
    )
    draw.polygon(
        [(width * 0.5, height * 0.15), (width * 0.5, height * 0.58), (width * 0.78, height * 0.58)],
        fill=COLORS["white"],
    )
    draw.polygon(
        [(width * 0.47, height * 0.22), (width * 0.47, height * 0.58), (width * 0.28, height * 0.58)],
        fill=COLORS["red"],
    )
    return Picture(image, "A sailboat with a white and a red sail on a blue sea.")


def _traffic_light(size: tuple[int, int], lit: str) -> Picture:
    """A traffic light with one lamp lit."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS["light grey"])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.rectangle((width * 0.35, height * 0.05, width * 0.65, height * 0.8), fill=COLORS["black"])
    draw.rectangle((width * 0.47, height * 0.8, width * 0.53, height), fill=COLORS["grey"])
    for index, name in enumerate(("red", "yellow", "green")):
        top = height * (0.09 + index * 0.24)
        fill = COLORS[name] if name == lit else COLORS["grey"]
        draw.ellipse((width * 0.4, top, width * 0.6, top + height * 0.19), fill=fill)
    return Picture(image, f"A traffic light showing {lit} on a light grey background.")


def _diagonal_split(size: tuple[int, int], first: str, second: str) -> Picture:
    """An image split diagonally into two colours."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[first])
    draw = ImageDraw.Draw(image)
    width, height = size
    draw.polygon([(width, 0), (width, height), (0, height)], fill=COLORS[second])
    return Picture(image, f"A square split diagonally into a {first} upper half and a {second} lower half.")


def _dot_grid(size: tuple[int, int], dots: str, background: str, spacing: int) -> Picture:
    """A regular grid of dots."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", size, COLORS[background])
    draw = ImageDraw.Draw(image)
    radius = spacing / 4
    for y in range(spacing // 2, size[1], spacing):
        for x in range(spacing // 2, size[0], spacing):
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=COLORS[dots])
    return Picture(image, f"A grid of small {dots} dots on a {background} background.")


def _out_of_focus(picture: Picture, radius: float) -> Picture:
    """`picture` under a Gaussian blur, for the blur filter to find."""
    from PIL import ImageFilter

    caption = picture.caption[0].lower() + picture.caption[1:]
    return Picture(picture.image.filter(ImageFilter.GaussianBlur(radius)), f"A blurry picture of {caption}")


def _encode(image: Image.Image, extension: str, quality: int = 90) -> bytes:
    """Encode `image` as JPEG (fixed quality, 4:2:0 chroma) or as PNG (fixed compression level)."""
    buffer = io.BytesIO()
    if extension == "jpg":
        image.save(buffer, format="JPEG", quality=quality, optimize=False, subsampling=2)
    else:
        image.save(buffer, format="PNG", optimize=False, compress_level=9)
    return buffer.getvalue()


@dataclass(frozen=True)
class Pictures:
    """The drawings of the image shard (encoded, with captions) and the extra ones of the media folder."""

    distinct: list[tuple[Picture, EncodedImage]]
    media_only: list[Picture]


def _pictures() -> Pictures:
    """Draw and encode the distinct pictures of the tar, and draw those only in the media folder."""
    drawings: list[tuple[Picture, str]] = [
        (_shape_on_gradient((224, 224), "circle", "red", "navy", "sky blue", False), "jpg"),
        (_hazard_stripes((192, 128), "yellow", "black", 8), "png"),
        (_landscape((256, 192), "blue", "green", "yellow"), "jpg"),
        (_apple_on_tablecloth((160, 160), "green"), "png"),
        (_house((200, 200), "white", "red"), "jpg"),
        (_rings((240, 180), "orange", "purple", 5), "jpg"),
        (_night_sky((256, 160), seed=7), "jpg"),
        (_striped_flag((180, 120), "blue", "red"), "png"),
        (_scattered_shapes((208, 208), seed=11), "jpg"),
        (_sailboat((240, 200)), "jpg"),
        (_traffic_light((120, 220), "green"), "png"),
        (_shape_on_gradient((176, 240), "triangle", "yellow", "purple", "pink", True), "jpg"),
        (_diagonal_split((128, 128), "navy", "sand"), "jpg"),
        (_tree((192, 224), "sky blue"), "jpg"),
        (_dot_grid((224, 160), "white", "navy", 24), "png"),
    ]
    media_only = [
        _mountains((240, 160), "navy"),
        _balloons((160, 200)),
        _pie_chart((176, 176)),
        _fish((224, 160)),
        _smiley((144, 144), "pink"),
        _skyline((256, 144), seed=5),
        _shape_on_gradient((200, 200), "square", "green", "orange", "yellow", True),
        _out_of_focus(_scattered_shapes((224, 224), seed=3), radius=4.0),
    ]
    distinct = [
        (picture, EncodedImage(_encode(picture.image, extension), extension, picture.caption))
        for picture, extension in drawings
    ]
    return Pictures(distinct, media_only)


def _webdataset_sample(image: EncodedImage, metadata: bytes | None = None) -> dict[str, bytes]:
    """One WebDataset sample: the image, its caption and a json member (valid unless given)."""
    default = json.dumps({"source": "demo", "license": "CC0"}).encode("utf-8")
    return {image.extension: image.data, "txt": image.caption.encode("utf-8"), "json": metadata or default}


def _image_samples(pictures: Pictures) -> list[dict[str, bytes]]:
    """WebDataset samples for the tar in key order, each a map of member extension to bytes."""
    from PIL import Image

    encoded = [image for _, image in pictures.distinct]
    samples = [_webdataset_sample(image) for image in encoded[:12]]
    planted = [_webdataset_sample(encoded[index]) for index in (0, 3, 5)]
    for index in (2, 4, 8):
        picture = pictures.distinct[index][0]
        planted.append(
            _webdataset_sample(
                EncodedImage(_encode(picture.image, "jpg", quality=55), "jpg", picture.caption)
            )
        )
    for index in (1, 6, 9):
        picture, original = pictures.distinct[index]
        width, height = picture.image.size
        resized = picture.image.resize((width * 4 // 5, height * 4 // 5), Image.Resampling.LANCZOS)
        planted.append(
            _webdataset_sample(
                EncodedImage(_encode(resized, original.extension), original.extension, picture.caption)
            )
        )
    tiny_square = Image.new("RGB", (12, 12), COLORS["white"])
    tiny_square.paste(COLORS["red"], (3, 3, 9, 9))
    tiny_gradient = _gradient((12, 12), COLORS["blue"], COLORS["sky blue"])
    planted += [
        _webdataset_sample(EncodedImage(_encode(tiny_square, "png"), "png", "A tiny red square on white.")),
        _webdataset_sample(EncodedImage(_encode(tiny_gradient, "jpg"), "jpg", "A tiny blue gradient.")),
        _webdataset_sample(
            EncodedImage(
                _encode(Image.new("RGB", (128, 128), COLORS["white"]), "png"), "png", "A plain white image."
            )
        ),
        _webdataset_sample(
            EncodedImage(
                _encode(Image.new("RGB", (160, 120), COLORS["grey"]), "jpg"), "jpg", "A plain grey image."
            )
        ),
        _webdataset_sample(
            EncodedImage(encoded[12].data[: len(encoded[12].data) // 2], "jpg", encoded[12].caption)
        ),
        _webdataset_sample(
            EncodedImage(
                b"This is not an image, just text saved under a .jpg name.\n", "jpg", "A photo of a cat."
            )
        ),
        _webdataset_sample(encoded[13], metadata=b'{"source": "demo", "license": '),
        {"txt": b"A photo of a lighthouse on a rocky coast at dusk."},
        _webdataset_sample(encoded[14]),
    ]
    random.Random(404).shuffle(planted)
    return samples + planted


def _image_tar(pictures: Pictures) -> bytes:
    """`images_000.tar`: WebDataset samples with consecutive keys 000000, 000001, ..."""
    members: dict[str, bytes] = {}
    for key, sample in enumerate(_image_samples(pictures)):
        for extension, data in sample.items():
            members[f"{key:06d}.{extension}"] = data
    return _tar_bytes(members)


# Media folder


def _media_files(pictures: Pictures) -> dict[str, bytes]:
    """Every file of the `media_001/` folder by relative path."""
    files: dict[str, bytes] = {}
    files.update(_media_images(pictures))
    files.update(_media_audio())
    files.update(_media_video())
    files["notes.xyz"] = (
        b"Shot list for the demo media folder.\nNothing here is meant to be read by the pipeline.\n"
    )
    return files


def _media_images(pictures: Pictures) -> dict[str, bytes]:
    """`images/`: PNG pictures with same-name captions, one out of focus, the last a byte copy of a tar
    picture."""
    files: dict[str, bytes] = {}
    for index, picture in enumerate(pictures.media_only):
        files[f"images/image_{index:03d}.png"] = _encode(picture.image, "png")
        files[f"images/image_{index:03d}.txt"] = picture.caption.encode("utf-8")
    _, copied = pictures.distinct[1]
    files[f"images/image_{len(pictures.media_only):03d}.png"] = copied.data
    files[f"images/image_{len(pictures.media_only):03d}.txt"] = copied.caption.encode("utf-8")
    return files


def _envelope(samples: int, attack: float, release: float) -> np.ndarray:
    """A linear attack and release envelope over `samples` samples (times in seconds)."""
    import numpy as np

    envelope = np.ones(samples)
    attack_samples = min(samples, int(attack * AUDIO_SAMPLE_RATE))
    release_samples = min(samples, int(release * AUDIO_SAMPLE_RATE))
    if attack_samples:
        envelope[:attack_samples] = np.linspace(0.0, 1.0, attack_samples)
    if release_samples:
        envelope[-release_samples:] *= np.linspace(1.0, 0.0, release_samples)
    return envelope


def _times(duration: float) -> np.ndarray:
    """Sample times in seconds for a clip of `duration` seconds."""
    import numpy as np

    return np.arange(round(duration * AUDIO_SAMPLE_RATE)) / AUDIO_SAMPLE_RATE


def _tone(duration: float, frequencies: Sequence[float], tremolo_hz: float = 0.0) -> np.ndarray:
    """A sum of sines (a tone or chord), optionally with amplitude modulation, faded in and out."""
    import numpy as np

    t = _times(duration)
    wave = sum(np.sin(2 * np.pi * frequency * t) for frequency in frequencies) / len(frequencies)
    if tremolo_hz:
        wave = wave * (0.6 + 0.4 * np.sin(2 * np.pi * tremolo_hz * t))
    return 0.6 * wave * _envelope(len(t), 0.05, 0.2)


def _chirp(duration: float, start_hz: float, end_hz: float) -> np.ndarray:
    """An exponential frequency sweep."""
    import numpy as np

    t = _times(duration)
    ratio = end_hz / start_hz
    phase = 2 * np.pi * start_hz * duration * (ratio ** (t / duration) - 1) / math.log(ratio)
    return 0.5 * np.sin(phase) * _envelope(len(t), 0.02, 0.1)


def _noise_bursts(duration: float, bursts: int, seed: int) -> np.ndarray:
    """White-noise bursts separated by silence."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.zeros(len(_times(duration)))
    slot = len(wave) // bursts
    burst = slot // 2
    for index in range(bursts):
        start = index * slot + slot // 4
        wave[start : start + burst] = rng.normal(0.0, 0.2, burst) * _envelope(burst, 0.01, 0.05)
    return np.clip(wave, -0.9, 0.9)


def _brown_noise(duration: float, seed: int) -> np.ndarray:
    """Brown (integrated white) noise, normalised and faded."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.cumsum(rng.normal(0.0, 1.0, len(_times(duration))))
    wave -= np.linspace(wave[0], wave[-1], len(wave))
    return 0.5 * wave / np.max(np.abs(wave)) * _envelope(len(wave), 0.1, 0.3)


def _arpeggio(note_hz: Sequence[float], note_seconds: float) -> np.ndarray:
    """A sequence of short plucked notes."""
    import numpy as np

    notes = []
    for frequency in note_hz:
        t = _times(note_seconds)
        notes.append(0.5 * np.sin(2 * np.pi * frequency * t) * np.exp(-4.0 * t))
    return np.concatenate(notes)


def _drum_hits(duration: float, beats_per_minute: float, seed: int) -> np.ndarray:
    """Low thumps with a noisy attack on a steady beat."""
    import numpy as np

    rng = np.random.default_rng(seed)
    wave = np.zeros(len(_times(duration)))
    beat = int(AUDIO_SAMPLE_RATE * 60 / beats_per_minute)
    hit_t = _times(0.25)
    hit = np.sin(2 * np.pi * 70 * hit_t) * np.exp(-18 * hit_t) + 0.3 * rng.normal(0, 1, len(hit_t)) * np.exp(
        -60 * hit_t
    )
    for start in range(0, len(wave) - len(hit), beat):
        wave[start : start + len(hit)] += 0.6 * hit
    return np.clip(wave, -0.9, 0.9)


def _square(duration: float, frequency: float) -> np.ndarray:
    """A band-limited square wave built from its odd harmonics."""
    import numpy as np

    t = _times(duration)
    wave = sum(np.sin(2 * np.pi * frequency * k * t) / k for k in range(1, 16, 2))
    return 0.4 * wave * _envelope(len(t), 0.02, 0.1)


def _fm_bell(duration: float, carrier_hz: float, modulator_hz: float) -> np.ndarray:
    """A frequency-modulated bell-like tone with a long decay."""
    import numpy as np

    t = _times(duration)
    index = 3.0 * np.exp(-1.5 * t)
    return (
        0.5
        * np.sin(2 * np.pi * carrier_hz * t + index * np.sin(2 * np.pi * modulator_hz * t))
        * np.exp(-1.2 * t)
    )


def _wav_bytes(wave: np.ndarray, rate: int = AUDIO_SAMPLE_RATE) -> bytes:
    """Encode a mono float wave as 16-bit PCM WAV (16 kHz unless told)."""
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, wave, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


AUDIO_CAPTIONS: dict[str, str] = {
    "tone_440hz": "A steady 440 hertz sine tone that fades in and out.",
    "chord_c_major": "A sustained C major chord played on a soft synthesiser.",
    "noise_bursts": "Five short bursts of hissing white noise separated by silence.",
}
"""Captions for some of the audio clips."""


def _in_hiss(wave: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """`wave` plus white noise `snr_db` below its mean power."""
    import numpy as np

    noise = np.random.default_rng(seed).normal(0.0, 1.0, len(wave))
    noise *= math.sqrt(float(np.mean(wave**2)) / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -0.95, 0.95)


def _media_audio() -> dict[str, bytes]:
    """`audio/`: tones, chords, sweeps and noises, plus a duplicate, silence, a too-short and a corrupt clip,
    and for the audio quality filter an overdriven (clipped), a hissing and an 8 kHz clip."""
    import numpy as np

    clips: dict[str, Callable[[], np.ndarray]] = {
        "tone_440hz": lambda: _tone(2.0, [440.0]),
        "tone_660hz_tremolo": lambda: _tone(3.0, [660.0], tremolo_hz=4.0),
        "chord_c_major": lambda: _tone(2.5, [261.63, 329.63, 392.0]),
        "chord_a_minor": lambda: _tone(2.0, [220.0, 261.63, 329.63]),
        "chirp_up": lambda: _chirp(1.5, 200.0, 2000.0),
        "chirp_down": lambda: _chirp(2.0, 3000.0, 300.0),
        "noise_bursts": lambda: _noise_bursts(3.0, 5, seed=21),
        "brown_noise": lambda: _brown_noise(2.5, seed=22),
        "arpeggio": lambda: _arpeggio([261.63, 329.63, 392.0, 523.25, 392.0, 329.63, 261.63, 196.0], 0.4),
        "drum_hits": lambda: _drum_hits(2.0, 120.0, seed=23),
        "square_220hz": lambda: _square(1.0, 220.0),
        "fm_bell": lambda: _fm_bell(4.0, 440.0, 620.0),
    }
    files = {f"audio/{name}.wav": _wav_bytes(make()) for name, make in clips.items()}
    files["audio/tone_440hz_copy.wav"] = files["audio/tone_440hz.wav"]
    files["audio/silence_2s.wav"] = _wav_bytes(np.zeros(2 * AUDIO_SAMPLE_RATE))
    files["audio/blip_short.wav"] = _wav_bytes(_tone(0.2, [880.0]))
    files["audio/broken_clip.wav"] = _random_bytes(31, 4096)
    files["audio/overdriven_330hz.wav"] = _wav_bytes(np.clip(4.0 * _tone(2.0, [330.0]), -1.0, 1.0))
    files["audio/chord_in_hiss.wav"] = _wav_bytes(_in_hiss(_tone(2.0, [392.0, 493.88, 587.33]), 0.0, seed=24))
    files["audio/phone_tone_8khz.wav"] = _wav_bytes(_tone(2.0, [523.25])[::2], AUDIO_SAMPLE_RATE // 2)
    for name, caption in AUDIO_CAPTIONS.items():
        files[f"audio/{name}.txt"] = caption.encode("utf-8")
    return files


@dataclass(frozen=True)
class Clip:
    """A short synthetic video: frame size, frame rate, frame count, frame drawer and caption."""

    size: int
    fps: int
    frames: int
    draw: Callable[[int, int], Image.Image]
    caption: str


def _moving_circle(index: int, size: int) -> Image.Image:
    """A red circle crossing a dark blue frame from left to right."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["navy"])
    x = 4 + index * (size - 28) / 19
    ImageDraw.Draw(image).ellipse((x, size / 2 - 10, x + 20, size / 2 + 10), fill=COLORS["red"])
    return image


def _bouncing_square(index: int, size: int) -> Image.Image:
    """A green square bouncing up and down on white."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["white"])
    y = (size - 30) * abs(math.sin(index * math.pi / 9))
    ImageDraw.Draw(image).rectangle((size / 2 - 15, y, size / 2 + 15, y + 30), fill=COLORS["green"])
    return image


def _orbiting_shapes(index: int, size: int) -> Image.Image:
    """A yellow circle and a pink square orbiting the centre on black."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["black"])
    draw = ImageDraw.Draw(image)
    angle = index * 2 * math.pi / 24
    centre, radius = size / 2, size / 3
    x, y = centre + radius * math.cos(angle), centre + radius * math.sin(angle)
    draw.ellipse((x - 10, y - 10, x + 10, y + 10), fill=COLORS["yellow"])
    x, y = centre - radius * math.cos(angle), centre - radius * math.sin(angle)
    draw.rectangle((x - 9, y - 9, x + 9, y + 9), fill=COLORS["pink"])
    return image


def _growing_ring(index: int, size: int) -> Image.Image:
    """An orange ring growing from the centre of a grey frame."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["grey"])
    radius = 4 + index * 2.6
    centre = size / 2
    ImageDraw.Draw(image).ellipse(
        (centre - radius, centre - radius, centre + radius, centre + radius),
        outline=COLORS["orange"],
        width=4,
    )
    return image


def _scrolling_bars(index: int, size: int) -> Image.Image:
    """Coloured horizontal bars scrolling downwards."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (size, size), COLORS["white"])
    draw = ImageDraw.Draw(image)
    palette = ["red", "orange", "yellow", "green", "blue", "purple"]
    bar = size // 6
    for row in range(-1, 7):
        top = row * bar + (index * 3) % (bar * len(palette))
        draw.rectangle(
            (0, top % (size + bar) - bar, size, top % (size + bar)), fill=COLORS[palette[row % len(palette)]]
        )
    return image


def _still_house(index: int, size: int) -> Image.Image:
    """The same drawing of a house in every frame: a still posing as a video."""
    return _house((size, size), "white", "red").image


def _rising_bubble(index: int, size: int) -> Image.Image:
    """A white bubble rising through blue water."""
    from PIL import ImageDraw

    image = _gradient((size, size), COLORS["sky blue"], COLORS["navy"])
    y = size - 16 - index * (size - 20) / 6
    ImageDraw.Draw(image).ellipse((size / 2 - 8, y, size / 2 + 8, y + 16), outline=COLORS["white"], width=3)
    return image


def _media_video() -> dict[str, bytes]:
    """`video/`: short clips of moving shapes, plus a duplicate, a too-short and a corrupt clip, a still
    picture repeated for two seconds and a clip at 2 frames per second."""
    clips = {
        "moving_circle": Clip(
            64, 10, 20, _moving_circle, "A red ball rolls from left to right across a dark blue screen."
        ),
        "bouncing_square": Clip(
            96, 12, 18, _bouncing_square, "A green square bounces up and down on a white background."
        ),
        "orbiting_shapes": Clip(
            96, 8, 24, _orbiting_shapes, "A yellow circle and a pink square circle each other on black."
        ),
        "growing_ring": Clip(
            64, 10, 10, _growing_ring, "An orange ring grows outwards from the centre of a grey screen."
        ),
        "scrolling_bars": Clip(
            96, 12, 30, _scrolling_bars, "Rainbow-coloured horizontal bars scroll down the screen."
        ),
        "flash": Clip(64, 8, 2, _moving_circle, "A red ball appears for a moment."),
        "still_house": Clip(
            64, 10, 20, _still_house, "A small white house with a red roof that never moves."
        ),
        "rising_bubble": Clip(64, 2, 6, _rising_bubble, "A white bubble rises through blue water."),
    }
    files: dict[str, bytes] = {}
    for name, clip in clips.items():
        pictures = (clip.draw(index, clip.size) for index in range(clip.frames))
        files[f"video/{name}.mp4"] = encode_mp4(pictures, clip.fps, H264_VIDEO)
        files[f"video/{name}.txt"] = clip.caption.encode("utf-8")
    files["video/moving_circle_copy.mp4"] = files["video/moving_circle.mp4"]
    files["video/broken_clip.mp4"] = _random_bytes(41, 6000)
    return files
