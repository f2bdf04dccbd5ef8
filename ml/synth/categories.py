"""The shop's fixed category list, and the title checks that validate an enrichment answer.

Consistency rules (documented here because they decide what is rejected):

* **category vs title keywords**: each category has a few *strong* title keywords (e.g. NECKLACE
  for jewellery, CHRISTMAS for christmas). When a title contains strong keywords, the answer's
  category must be one of the categories those keywords point to; "other" is only accepted for a
  title without any strong keyword. Titles without keywords accept any category (no evidence).
* **description vs title**: the description must share at least one content word with the title
  (words compared in lower case, plural "s" stripped, stop words and words under 3 letters ignored).
  A one-line description of a product that names nothing from its title is an echo of the prompt
  or a hallucination.
"""

from __future__ import annotations

import re

CATEGORIES: tuple[str, ...] = (
    "home decor",
    "kitchen and dining",
    "lighting and candles",
    "bags and storage",
    "stationery and cards",
    "party and gift wrap",
    "christmas",
    "toys and games",
    "jewellery and accessories",
    "garden and outdoor",
    "textiles",
    "other",
)

# strong title keywords (singular, lower case) -> categories they point to
KEYWORDS: dict[str, tuple[str, ...]] = {
    "christmas": ("christmas",),
    "xmas": ("christmas",),
    "advent": ("christmas",),
    "santa": ("christmas",),
    "reindeer": ("christmas",),
    "bauble": ("christmas",),
    "candle": ("lighting and candles",),
    "t-light": ("lighting and candles",),
    "tealight": ("lighting and candles",),
    "lantern": ("lighting and candles",),
    "lamp": ("lighting and candles",),
    "lampshade": ("lighting and candles",),
    "mug": ("kitchen and dining",),
    "teacup": ("kitchen and dining",),
    "saucer": ("kitchen and dining",),
    "teapot": ("kitchen and dining",),
    "plate": ("kitchen and dining",),
    "bowl": ("kitchen and dining",),
    "cakestand": ("kitchen and dining",),
    "baking": ("kitchen and dining",),
    "jam": ("kitchen and dining",),
    "spoon": ("kitchen and dining",),
    "tumbler": ("kitchen and dining",),
    "recipe": ("kitchen and dining",),
    "cutlery": ("kitchen and dining",),
    "napkin": ("kitchen and dining", "party and gift wrap"),
    "bag": ("bags and storage", "party and gift wrap"),
    "basket": ("bags and storage",),
    "storage": ("bags and storage",),
    "card": ("stationery and cards",),
    "notebook": ("stationery and cards",),
    "pencil": ("stationery and cards",),
    "pen": ("stationery and cards",),
    "sticker": ("stationery and cards",),
    "notepad": ("stationery and cards",),
    "eraser": ("stationery and cards",),
    "envelope": ("stationery and cards",),
    "wrap": ("party and gift wrap",),
    "party": ("party and gift wrap",),
    "bunting": ("party and gift wrap",),
    "balloon": ("party and gift wrap",),
    "ribbon": ("party and gift wrap",),
    "toy": ("toys and games",),
    "game": ("toys and games",),
    "puzzle": ("toys and games",),
    "jigsaw": ("toys and games",),
    "doll": ("toys and games",),
    "skittle": ("toys and games",),
    "domino": ("toys and games",),
    "necklace": ("jewellery and accessories",),
    "bracelet": ("jewellery and accessories",),
    "earring": ("jewellery and accessories",),
    "brooch": ("jewellery and accessories",),
    "purse": ("jewellery and accessories",),
    "hairclip": ("jewellery and accessories",),
    "garden": ("garden and outdoor",),
    "watering": ("garden and outdoor",),
    "plant": ("garden and outdoor",),
    "feeder": ("garden and outdoor",),
    "picnic": ("garden and outdoor",),
    "frame": ("home decor",),
    "clock": ("home decor",),
    "mirror": ("home decor",),
    "doorstop": ("home decor",),
    "decoration": ("home decor", "christmas"),
    "vase": ("home decor",),
    "sign": ("home decor",),
    "cushion": ("textiles", "home decor"),
    "quilt": ("textiles",),
    "throw": ("textiles",),
    "apron": ("textiles", "kitchen and dining"),
    "towel": ("textiles", "kitchen and dining"),
    "blanket": ("textiles",),
}

STOP_WORDS = frozenset(
    "the and for with set of in on a an to from this that its it is are be your you our by at as or one two three "
    "four six pack box piece assorted design large small mini".split()
)
_WORD = re.compile(r"[a-z][a-z\-]*")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` with a plural ``s`` stripped (``holders`` -> ``holder``)."""
    out = []
    for w in _WORD.findall(str(text).lower()):
        w = w.strip("-")
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
            w = w[:-1]
        if w:
            out.append(w)
    return out


def content_words(text: str) -> set[str]:
    """Words of ``text`` that carry meaning: at least 3 letters and not a stop word."""
    return {w for w in words(text) if len(w) >= 3 and w not in STOP_WORDS}


def title_categories(title: str) -> set[str]:
    """Categories the title's strong keywords point to (empty: the title gives no evidence)."""
    found: set[str] = set()
    for w in words(title):
        found.update(KEYWORDS.get(w, ()))
    return found


def contradiction(title: str, category: str, description: str) -> str | None:
    """Why an answer contradicts its title, or None when it is consistent.

    Args:
        title: the product title (the ground truth).
        category: the answer's category.
        description: the answer's one-line description.
    Returns:
        ``category_contradicts_title``, ``description_unrelated`` or None.
    """
    expected = title_categories(title)
    if expected and category not in expected:
        return "category_contradicts_title"
    if not content_words(title) & content_words(description):
        return "description_unrelated"
    return None
