"""The caption grammar of Shapes world, both ways: sampling captions and parsing prompts."""

from __future__ import annotations

import random
import re

from vqclip.errors import VqclipError
from vqclip.shapes.scene import (
    BACKGROUNDS,
    CELLS,
    COLORS,
    RELATIONS,
    SHAPES,
    SIZES,
    Relation,
    Scene,
    SceneObject,
)

FRAMES: tuple[str, ...] = ("a drawing of", "a picture of", "an image of", "a photo of")
POSITIONS: dict[str, str] = {
    "top left": "in the top left",
    "top": "at the top",
    "top right": "in the top right",
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
    "bottom left": "in the bottom left",
    "bottom": "at the bottom",
    "bottom right": "in the bottom right",
}
PLURALS: dict[str, str] = {s: s + ("es" if s == "cross" else "s") for s in SHAPES}
NUMBERS: dict[int, str] = {2: "two", 3: "three"}

# Probability that the sampler includes each optional part (every one >= 0.5).
P_FRAME = 0.5
P_SIZE = 0.6
P_POSITION = 0.6
P_BACKGROUND = 0.6
P_DROP_COLOR = 0.15
P_DROP_SHAPE = 0.15


def article(word: str) -> str:
    """Returns ``an`` before a word that starts with a vowel sound, else ``a``."""
    return "an" if word[0] in "aeiou" else "a"


def _with_article(words: str) -> str:
    return f"{article(words)} {words}"


def sample_caption(scene: Scene, rng: random.Random) -> str:
    """Draws one caption of ``scene`` from the grammar, with random omissions.

    Args:
        scene: a full truth (every attribute set).
        rng: the source of randomness; the caption depends only on its state.

    Returns:
        A caption that the parser accepts and that the scene satisfies.
    """
    objs = scene.objects
    if scene.kind == "single":
        o = objs[0]
        drop = rng.random()
        color = None if drop < P_DROP_COLOR else o.color
        shape = None if P_DROP_COLOR <= drop < P_DROP_COLOR + P_DROP_SHAPE else o.shape
        words = []
        if rng.random() < P_SIZE:
            words.append(str(o.size))
        if color:
            words.append(color)
        words.append(shape or "shape")
        body = _with_article(" ".join(words))
        if rng.random() < P_POSITION:
            body += " " + POSITIONS[str(o.cell)]
    elif scene.kind == "pair":
        assert scene.relation is not None
        a, b = objs[scene.relation.subject], objs[scene.relation.object]
        body = (
            f"{_with_article(f'{a.color} {a.shape}')} {scene.relation.relation} "
            f"{_with_article(f'{b.color} {b.shape}')}"
        )
    else:
        o = objs[0]
        body = f"{NUMBERS[len(objs)]} {o.color} {PLURALS[str(o.shape)]}"
    if rng.random() < P_FRAME:
        body = f"{rng.choice(FRAMES)} {body}"
    if rng.random() < P_BACKGROUND:
        body += f" on a {scene.background} background"
    return body


# ---------------------------------------------------------------- parsing

_COLOR = "|".join(COLORS)
_SHAPE = "|".join(SHAPES)
_PLURAL = "|".join(PLURALS.values())
_SIZE = "|".join(SIZES)
_POSITION = "|".join(POSITIONS.values())
_RELATION = "|".join(RELATIONS)
_SINGLE = re.compile(
    rf"^(?P<art>a|an) (?:(?P<size>{_SIZE}) )?(?:(?P<color>{_COLOR}) )?"
    rf"(?P<shape>{_SHAPE}|shape)(?: (?P<pos>{_POSITION}))?$"
)
_PAIR = re.compile(
    rf"^(?P<art1>a|an) (?P<c1>{_COLOR}) (?P<s1>{_SHAPE}) (?P<rel>{_RELATION}) "
    rf"(?P<art2>a|an) (?P<c2>{_COLOR}) (?P<s2>{_SHAPE})$"
)
_COUNT = re.compile(rf"^(?P<num>two|three) (?P<color>{_COLOR}) (?P<plural>{_PLURAL})$")
_BACKGROUND = re.compile(rf" on a (?P<bg>{'|'.join(BACKGROUNDS)}) background$")
_VOCAB = (
    set(" ".join([*FRAMES, *POSITIONS.values(), *RELATIONS]).split())
    | set(COLORS)
    | set(SHAPES)
    | set(PLURALS.values())
    | set(SIZES)
    | set(BACKGROUNDS)
    | {"a", "an", "shape", "two", "three", "on", "background"}
)
_EXAMPLE = "e.g. 'a small red circle in the top left on a white background'"


def _normalise(text: str) -> str:
    t = " ".join(text.lower().replace(",", " ").split())
    t = t.removesuffix(".").strip()
    t = re.sub(r"\bgrey\b", "gray", t)
    return re.sub(r"\b(centre|middle)\b", "center", t)


_NAMED_BACKGROUND = re.compile(rf"\bon an? (?P<bg>{'|'.join(BACKGROUNDS)}) background\b")


def named_background(text: str) -> str | None:
    """The background the first "on a … background" anywhere in ``text`` names, or None.

    Read as :func:`parse_prompt` reads it (any case, ``grey`` for ``gray``), but the rest
    of ``text`` need not be a caption of the grammar (weights, ``|``, other words).
    """
    m = _NAMED_BACKGROUND.search(_normalise(text))
    return m["bg"] if m else None


def _check_article(art: str, following: str, text: str) -> None:
    if art != article(following):
        raise VqclipError(
            f"could not parse {text!r}: write '{article(following)} {following}', "
            f"not '{art} {following}'"
        )


def parse_prompt(text: str) -> Scene:
    """Turns a text of the Shapes grammar into a prompt truth.

    Attributes the text does not mention are ``None`` ("any"). Accepts ``centre``
    and ``middle`` for ``center`` and ``grey`` for ``gray``, any case, and a final
    full stop.

    Args:
        text: e.g. ``"a small red circle in the top left"``.

    Returns:
        The prompt as a :class:`Scene` whose unknown attributes are ``None``.

    Raises:
        VqclipError: the text is outside the grammar; the message says what was
            not understood.
    """
    t = _normalise(text)
    if not t:
        raise VqclipError(f"empty prompt; {_EXAMPLE}")
    unknown = [w for w in t.split() if w not in _VOCAB]
    if unknown:
        raise VqclipError(
            f"could not parse {text!r}: unknown word {unknown[0]!r} "
            f"(colours: {', '.join(COLORS)}; shapes: {', '.join(SHAPES)})"
        )
    for frame in FRAMES:
        if t.startswith(frame + " "):
            _check_article(frame.split()[0], frame.split()[1], text)
            t = t[len(frame) + 1 :]
            break
    # "an image of" is the only frame with "an"; a wrong article there is caught here.
    if t.startswith(("a image of ", "an drawing of ", "an picture of ", "an photo of ")):
        raise VqclipError(f"could not parse {text!r}: wrong article in its opening phrase")
    background = None
    m = _BACKGROUND.search(t)
    if m:
        background = m["bg"]
        t = t[: m.start()]
    if m := _COUNT.match(t):
        shape = next(s for s, p in PLURALS.items() if p == m["plural"])
        n = 2 if m["num"] == "two" else 3
        objs = tuple(SceneObject(color=m["color"], shape=shape) for _ in range(n))
        return Scene(kind="count", objects=objs, background=background)
    if m := _PAIR.match(t):
        _check_article(m["art1"], m["c1"], text)
        _check_article(m["art2"], m["c2"], text)
        objs = (SceneObject(m["c1"], m["s1"]), SceneObject(m["c2"], m["s2"]))
        return Scene(
            kind="pair", objects=objs, background=background, relation=Relation(0, m["rel"], 1)
        )
    if m := _SINGLE.match(t):
        what: str | None = None if m["shape"] == "shape" else m["shape"]
        if what is None and m["color"] is None:
            raise VqclipError(f"could not parse {text!r}: name a colour or a shape; {_EXAMPLE}")
        _check_article(m["art"], str(m["size"] or m["color"] or m["shape"]), text)
        cell = None
        if m["pos"]:
            cell = next(c for c, p in POSITIONS.items() if p == m["pos"])
        obj = SceneObject(color=m["color"], shape=what, size=m["size"], cell=cell)
        return Scene(kind="single", objects=(obj,), background=background)
    raise VqclipError(
        f"could not parse {text!r}: it does not follow the Shapes grammar; {_EXAMPLE}"
    )


# The CELLS import documents that every POSITIONS key is a cell name.
assert set(POSITIONS) == set(CELLS)
