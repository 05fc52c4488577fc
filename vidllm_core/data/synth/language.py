"""Geometry-derived language annotations for synthrooms in the real benchmarks' record formats.

Reference: issue 3 item 6; record layouts from ../shared/docs/FORMATS.md (ScanQA sec. 1, SQA3D sec. 2, ScanRefer
sec. 3, Multi3DRefer sec. 5, Nr3D/Sr3D sec. 6). Every answer and target set is computed from the scene geometry.
Rules (documented in docs/synth.md): only visible objects are asked about or referred to; counting questions are
asked only when every instance of the category is visible; distances are between footprint centres on the floor
plane, rounded to 0.1 m ("1.4 meters"); "closest"/"farthest" need a 0.3 m margin over the runner-up.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from vidllm_core.data.synth.catalog import CATEGORIES
from vidllm_core.data.synth.camera import free_points
from vidllm_core.data.synth.phrasing import QUESTION_TYPE, article, phrase
from vidllm_core.data.synth.scene import Scene, SceneObject, rects_overlap

REL_MARGIN = 0.3  # metres: a "closest"/"farthest"/"nearest" relation must win by this much
CORNER_DIST = 0.4  # footprint within this of two perpendicular walls -> "in the corner"
WALL_DIST = 0.25  # footprint within this of one wall -> "against the wall"
_NUM_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
_FRONT_CATS = ("bed", "sofa", "desk", "cabinet", "bookshelf", "nightstand", "chair")


def tokenize(text: str) -> list[str]:
    """ScanRefer-style tokens: lower-case words and punctuation marks."""
    return re.findall(r"[a-z0-9]+|[.,?]", text.lower())


def metres(v: float) -> str:
    return f"{v:.1f} meters"


def name_of(category: str) -> str:
    """ScanRefer/Multi3DRefer object_name: raw label with spaces replaced by underscores."""
    return category.replace(" ", "_")


@dataclass(frozen=True)
class Ref:
    """A noun phrase that singles out one object, and the constraint it encodes."""

    phrase: str  # e.g. "the chair closest to the bed"
    category: str
    colour: str | None = None
    relation: str | None = None  # None, "closest", "farthest", "on"
    anchor: int | None = None


class SceneFacts:
    """Geometric facts about a scene used by every template: visibility, distances, locations, references."""

    def __init__(self, scene: Scene, visible_pixels: dict[int, int], min_pixels: int) -> None:
        self.scene = scene
        self.objs = scene.objects
        self.by_id = {o.id: o for o in self.objs}
        self.visible = {o.id: visible_pixels.get(o.id, 0) >= min_pixels for o in self.objs}
        self.count = {c: sum(o.category == c for o in self.objs) for c in CATEGORIES}

    # ---- geometry
    @staticmethod
    def dist(a: SceneObject, b: SceneObject) -> float:
        return float(np.linalg.norm(a.position[:2] - b.position[:2]))

    @staticmethod
    def gap(a: SceneObject, b: SceneObject) -> float:
        """Floor-plane distance between the two footprint rectangles (0 when they touch or overlap)."""
        pa, pb = a.footprint(), b.footprint()
        if rects_overlap(pa, pb):
            return 0.0
        best = math.inf
        for p, q in ((pa, pb), (pb, pa)):
            for i in range(4):
                s0, s1 = q[i], q[(i + 1) % 4]
                seg = s1 - s0
                t = np.clip(((p - s0) @ seg) / (seg @ seg), 0, 1)
                best = min(best, float(np.min(np.linalg.norm(p - (s0 + t[:, None] * seg), axis=1))))
        return best

    def wall_distances(self, o: SceneObject) -> dict[str, float]:
        fp = o.footprint()
        r = self.scene.room
        return {"west": float(fp[:, 0].min()), "east": float(r.width - fp[:, 0].max()),
                "south": float(fp[:, 1].min()), "north": float(r.depth - fp[:, 1].max())}

    def location(self, o: SceneObject) -> str | None:
        """"in the corner", "against the wall", "in the middle of the room", "on the <support>" or None if unclear."""
        if o.category in ("door", "window"):
            return None
        if o.support is not None:
            return f"on the {self.by_id[o.support].category}"
        d = self.wall_distances(o)
        near_x = [k for k in ("west", "east") if d[k] < CORNER_DIST]
        near_y = [k for k in ("south", "north") if d[k] < CORNER_DIST]
        if len(near_x) == 1 and len(near_y) == 1:
            return "in the corner"
        close = [k for k in d if d[k] < WALL_DIST]
        if len(close) == 1 and len(near_x) + len(near_y) == 1:
            return "against the wall"
        r = self.scene.room
        if min(d.values()) > 0.8 and min(o.position[0], r.width - o.position[0], o.position[1], r.depth - o.position[1]) \
                > 0.3 * min(r.width, r.depth):
            return "in the middle of the room"
        return None

    # ---- references
    def unique_landmarks(self, exclude: int | None = None) -> list[SceneObject]:
        return [o for o in self.objs if self.count[o.category] == 1 and self.visible[o.id] and o.id != exclude
                and o.category != "window"]

    def extreme(self, o: SceneObject, anchor: SceneObject, kind: str, pool: list[SceneObject]) -> bool:
        """True if `o` is the closest/farthest member of `pool` to `anchor` by REL_MARGIN."""
        others = [self.dist(p, anchor) for p in pool if p.id != o.id]
        if not others:
            return False
        d = self.dist(o, anchor)
        return d + REL_MARGIN <= min(others) if kind == "closest" else d - REL_MARGIN >= max(others)

    def refs(self, o: SceneObject, allow_colour: bool = True) -> list[Ref]:
        """All unique references to `o`, simplest first (category; colour + category; relation to a landmark)."""
        out: list[Ref] = []
        same = [p for p in self.objs if p.category == o.category]
        if len(same) == 1:
            out.append(Ref(f"the {o.category}", o.category))
        same_col = [p for p in same if p.colour == o.colour]
        if allow_colour and len(same) > 1 and len(same_col) == 1:
            out.append(Ref(f"the {o.colour} {o.category}", o.category, o.colour))
        if len(same) > 1:
            if o.support is not None:
                host = self.by_id[o.support]
                if self.count[host.category] == 1 and self.visible[host.id] and \
                        sum(p.support == host.id for p in same) == 1:
                    out.append(Ref(f"the {o.category} on the {host.category}", o.category, None, "on", host.id))
            for lm in self.unique_landmarks(exclude=o.id):
                for kind, word in (("closest", "closest to"), ("farthest", "farthest from")):
                    if self.extreme(o, lm, kind, same):
                        out.append(Ref(f"the {o.category} {word} the {lm.category}", o.category, None, kind, lm.id))
        return out

    def matches(self, ref: Ref) -> list[int]:
        """Objects satisfying a reference (used to assert uniqueness)."""
        pool = [p for p in self.objs if p.category == ref.category and (ref.colour is None or p.colour == ref.colour)]
        if ref.relation is None:
            return [p.id for p in pool]
        if ref.relation == "on":
            return [p.id for p in pool if p.support == ref.anchor]
        anchor = self.by_id[ref.anchor]
        return [p.id for p in pool if self.extreme(p, anchor, ref.relation, pool)]


# ------------------------------------------------------------------------------------------------ generators
def _scene_key(scene_id: str) -> str:
    return scene_id.split("_")[0]


def scanqa(f: SceneFacts, split: str, rng: np.random.Generator) -> list[dict]:
    """ScanQA records: counting, colour, existence, relation, location, size, distance, each in one of several
    phrasings (phrasing.py); val/test scenes add every question again in a held-out phrasing."""
    qs: list[tuple[str, dict[str, str], list[str], list[SceneObject]]] = []
    vis = [o for o in f.objs if f.visible[o.id]]
    present = sorted({o.category for o in f.objs})
    for cat in present:
        inst = [o for o in f.objs if o.category == cat]
        if all(f.visible[o.id] for o in inst):
            n = len(inst)
            qs.append(("counting", {"plural": CATEGORIES[cat].plural},
                       [str(n), _NUM_WORDS[n] if n <= 10 else str(n)], inst))
    for o in vis:
        refs = f.refs(o, allow_colour=False)
        if refs:
            ref = refs[0]
            qs.append(("colour", {"ref": ref.phrase}, [o.colour], [o]))
        refs = f.refs(o)
        if not refs:
            continue
        ref = refs[int(rng.integers(len(refs)))]
        loc = f.location(o)
        if loc is not None:
            qs.append(("location", {"ref": ref.phrase}, [loc], [o]))
        if o.category not in ("window", "door") and o.support is None:
            near = sorted(((f.gap(o, p), p) for p in vis if p.id != o.id and p.category != "window" and p.support is None),
                          key=lambda x: x[0])
            if near:
                best = near[0]
                rival = [g for g, p in near[1:] if p.category != best[1].category]
                if not rival or rival[0] >= best[0] + REL_MARGIN:
                    qs.append(("next_to", {"ref": ref.phrase}, [best[1].category], [o, best[1]]))
        kids = [p for p in f.objs if p.support == o.id]
        if kids and all(f.visible[p.id] for p in kids):
            names = " and ".join(sorted({p.category for p in kids}))
            qs.append(("on_top", {"ref": ref.phrase}, [names], [o, *kids]))
        if o.category not in ("window", "door"):
            qs.append(("height", {"ref": ref.phrase}, [metres(float(o.size[2]))], [o]))
            qs.append(("length", {"ref": ref.phrase}, [metres(float(max(o.size[0], o.size[1])))], [o]))
    absent = [c for c in CATEGORIES if f.count[c] == 0 and c != "window"]
    for cat in list(rng.permutation([c for c in present if any(f.visible[o.id] for o in f.objs if o.category == c)]))[:3]:
        qs.append(("existence", {"a_cat": article(cat)}, ["yes"], [o for o in f.objs if o.category == cat]))
    for cat in list(rng.permutation(absent))[:2]:
        qs.append(("existence", {"a_cat": article(cat)}, ["no"], []))
    floor = [o for o in vis if o.support is None and o.category not in ("window",)]
    pairs = [(a, b) for i, a in enumerate(floor) for b in floor[i + 1:]]
    for k in rng.permutation(len(pairs))[:4] if pairs else []:
        a, b = pairs[int(k)]
        ra, rb = f.refs(a), f.refs(b)
        if ra and rb:
            qs.append(("distance", {"ref": ra[0].phrase, "ref2": rb[0].phrase}, [metres(f.dist(a, b))], [a, b]))
    key = _scene_key(f.scene.scene_id)
    out = []
    for k, (kind, slots, ans, objs) in enumerate(qs):
        phrasings = [("template", "")] if split == "train" else [("template", ""), ("heldout", "h")]
        for name, suffix in phrasings:
            out.append({"answers": ans, "object_ids": [o.id for o in objs], "object_names": [o.category for o in objs],
                        "question": phrase(kind, rng, heldout=name == "heldout", **slots),
                        "question_id": f"{split}-{key}-{k}{suffix}", "scene_id": f.scene.scene_id,
                        "question_type": QUESTION_TYPE[kind], "phrasing": name})
    return out


def _bearing(p: np.ndarray, yaw: float, q: np.ndarray) -> float:
    """Angle of q seen from p with facing `yaw`, degrees in (-180, 180]; positive = to the left."""
    v = q - p
    a = math.degrees(math.atan2(v[1], v[0]) - yaw)
    return (a + 180.0) % 360.0 - 180.0


def sector(angle: float) -> str:
    a = abs(angle)
    return "front" if a < 45 else "behind" if a > 135 else ("left" if angle > 0 else "right")


def _free_point(f: SceneFacts, xy: np.ndarray) -> bool:
    return bool(free_points(f.scene, xy[None], 0.2, 0.3)[0])


def sqa3d(f: SceneFacts, split: str, rng: np.random.Generator, scene_index: int, max_situations: int = 6
          ) -> tuple[list[dict], list[dict]]:
    """SQA3D question and annotation records: a situation (position + facing) then a question in the agent frame."""
    questions, annotations = [], []
    vis = [o for o in f.objs if f.visible[o.id] and o.category != "window"]
    lms = [o for o in vis if f.refs(o) and o.support is None and o.category != "door"]
    k = 0
    for lm in [lms[int(i)] for i in rng.permutation(len(lms))][:max_situations]:
        spot = None
        for side in (lm.front, -lm.front, np.array([lm.front[1], -lm.front[0]]), np.array([-lm.front[1], lm.front[0]])):
            ext = abs(side @ (np.array([math.cos(lm.yaw), math.sin(lm.yaw)]))) * lm.size[0] / 2 + \
                abs(side @ lm.front) * lm.size[1] / 2
            cand = lm.position[:2] + side * (ext + 0.6)
            if _free_point(f, cand):
                spot = cand
                break
        if spot is None:
            continue
        targets = [o for o in vis if o.id != lm.id and f.refs(o) and f.dist(o, lm) > 0.8]
        if not targets:
            continue
        face = targets[int(rng.integers(len(targets)))]
        yaw = math.atan2(face.position[1] - spot[1], face.position[0] - spot[0])
        situation = f"I am standing next to {f.refs(lm)[0].phrase} and facing {f.refs(face)[0].phrase}."
        bearings = {o.id: _bearing(spot, yaw, o.position[:2]) for o in f.objs}
        dists = {o.id: float(np.linalg.norm(o.position[:2] - spot)) for o in f.objs}
        items: list[tuple[str, str]] = []
        side_objs = [o for o in vis if o.id not in (lm.id, face.id) and 35 < abs(bearings[o.id]) < 145 and f.refs(o)]
        for o in side_objs[:2]:
            items.append((f"Is {f.refs(o)[0].phrase} on my left or on my right?", "left" if bearings[o.id] > 0 else "right"))
        for sec in ("behind", "left", "right"):
            cands = sorted((o for o in vis if sector(bearings[o.id]) == sec and o.support is None and o.id != lm.id),
                           key=lambda o: dists[o.id])
            if cands:
                rival = [dists[o.id] for o in cands[1:] if o.category != cands[0].category]
                near_edge = any(abs(abs(bearings[o.id]) - b) < 10 for o in vis for b in (45, 135) if o.support is None)
                if (not rival or rival[0] >= dists[cands[0].id] + REL_MARGIN) and not near_edge:
                    where = "behind me" if sec == "behind" else f"on my {sec}"
                    items.append((f"What is the closest object {where}?", cands[0].category))
        for cat in sorted({o.category for o in vis}):
            inst = [o for o in f.objs if o.category == cat]
            if len(inst) > 1 and all(f.visible[o.id] for o in inst) and \
                    all(abs(abs(bearings[o.id]) - b) > 10 for o in inst for b in (45, 135)):
                n = sum(sector(bearings[o.id]) == "left" for o in inst)
                items.append((f"How many {CATEGORIES[cat].plural} are on my left?", str(n)))
                break
        pairs = [(a, b) for a in vis for b in vis if a.id < b.id and a.category != b.category and f.refs(a) and f.refs(b)
                 and abs(dists[a.id] - dists[b.id]) > 0.5 and a.support is None and b.support is None]
        if pairs:
            a, b = pairs[int(rng.integers(len(pairs)))]
            items.append((f"Which one is closer to me, {f.refs(a)[0].phrase} or {f.refs(b)[0].phrase}?",
                          a.category if dists[a.id] < dists[b.id] else b.category))
        for q, ans in items:
            qid = 900000000000 + scene_index * 10000 + k
            k += 1
            questions.append({"scene_id": f.scene.scene_id, "situation": situation, "alternative_situation": [],
                              "question": q, "question_id": qid})
            annotations.append({"scene_id": f.scene.scene_id, "question_type": "N/A", "answer_type": "other",
                                "question_id": qid,
                                "answers": [{"answer": ans, "answer_confidence": "yes", "answer_id": 1}],
                                "rotation": {"_x": 0, "_y": 0, "_z": math.sin(yaw / 2), "_w": math.cos(yaw / 2)},
                                "position": {"x": float(spot[0]), "y": float(spot[1]), "z": 0}})
    return questions, annotations


def describe(f: SceneFacts, o: SceneObject, ref: Ref) -> str:
    """ScanRefer-style description: colour + category, then the unique constraint, then a true location."""
    first = f"this is a {o.colour} {o.category}."
    if ref.relation is None and ref.colour is None:
        second = f" it is the only {o.category} in the room."
    elif ref.relation is None:
        second = f" it is the only {o.colour} {o.category} in the room."
    else:
        second = f" it is {ref.phrase}."
    loc = f.location(o)
    third = f" it is {loc}." if loc is not None and ref.relation != "on" else ""
    return first + second + third


def scanrefer(f: SceneFacts, max_per_object: int = 2) -> list[dict]:
    out = []
    for o in f.objs:
        if not f.visible[o.id]:
            continue
        for ann, ref in enumerate(f.refs(o)[:max_per_object]):
            d = describe(f, o, ref)
            out.append({"scene_id": f.scene.scene_id, "object_id": str(o.id), "object_name": name_of(o.category),
                        "ann_id": str(ann), "description": d, "token": tokenize(d)})
    return out


def multi3drefer(f: SceneFacts, rng: np.random.Generator) -> list[dict]:
    rows: list[tuple[str, str, list[int], str]] = []
    for o in f.objs:
        refs = f.refs(o)
        if f.visible[o.id] and refs:
            rows.append((describe(f, o, refs[0]), o.category, [o.id], "st_w_d" if f.count[o.category] > 1 else "st_wo_d"))
    groups: dict[tuple[str, str | None], list[SceneObject]] = {}
    for o in f.objs:
        groups.setdefault((o.category, o.colour), []).append(o)
        groups.setdefault((o.category, None), []).append(o)
    for (cat, col), objs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        if len(objs) > 1 and all(f.visible[o.id] for o in objs) and cat != "window":
            text = f"the {col} {CATEGORIES[cat].plural} in the room." if col else f"all the {CATEGORIES[cat].plural} in the room."
            rows.append((text, cat, [o.id for o in objs], "mt"))
    present = sorted({o.category for o in f.objs if o.category != "window"})
    for cat in present[:3]:
        cols = [c for c in CATEGORIES[cat].colours if all(o.colour != c for o in f.objs if o.category == cat)]
        if cols:
            col = cols[int(rng.integers(len(cols)))]
            rows.append((f"the {col} {cat} in the room.", cat, [], "zt_w_d"))
    absent = [c for c in CATEGORIES if f.count[c] == 0 and c != "window"]
    for cat in list(rng.permutation(absent))[:2]:
        col = CATEGORIES[cat].colours[int(rng.integers(len(CATEGORIES[cat].colours)))]
        rows.append((f"the {col} {cat} in the room.", cat, [], "zt_wo_d"))
    return [{"scene_id": f.scene.scene_id, "object_name": name_of(cat), "object_ids": ids, "ann_id": k,
             "description": text, "eval_type": et} for k, (text, cat, ids, et) in enumerate(rows)]


_NR3D_TEMPLATES = ("the {p}.", "{p}.", "find {p}.")


def _stimulus(scene_id: str, cat: str, target: int, distractors: list[int]) -> str:
    return "-".join([scene_id, name_of(cat), str(1 + len(distractors)), str(target), *map(str, distractors)])


def nr3d(f: SceneFacts, split: str, rng: np.random.Generator) -> list[dict]:
    """Nr3D rows (free-form style utterances) for objects that have same-class distractors."""
    out = []
    for o in f.objs:
        if not f.visible[o.id] or f.count[o.category] < 2:
            continue
        for ref in f.refs(o)[:2]:
            words = ref.phrase[4:] if ref.phrase.startswith("the ") else ref.phrase
            if ref.relation is not None and ref.colour is None:
                words = f"{o.colour} {words}"
            utt = _NR3D_TEMPLATES[int(rng.integers(len(_NR3D_TEMPLATES)))].format(p=words)
            utt = utt[0].upper() + utt[1:]
            distractors = [p.id for p in f.objs if p.category == o.category and p.id != o.id]
            out.append({"stimulus_id": _stimulus(f.scene.scene_id, o.category, o.id, distractors), "utterance": utt,
                        "correct_guess": True, "speaker_id": 0, "listener_id": 0, "scan_id": f.scene.scene_id,
                        "instance_type": o.category, "target_id": o.id,
                        "tokens": [t for t in tokenize(utt) if t not in ".,?"], "dataset": "nr3d",
                        "mentions_target_class": True, "uses_object_lang": ref.anchor is not None,
                        "uses_spatial_lang": ref.relation is not None, "uses_color_lang": True,
                        "uses_shape_lang": False, "is_train": split == "train"})
    return out


def sr3d(f: SceneFacts, split: str) -> list[dict]:
    """Sr3D rows from spatial templates (closest/farthest, on/supporting, in front of/behind an anchor)."""
    out = []
    for o in f.objs:
        if not f.visible[o.id] or f.count[o.category] < 2:
            continue
        same = [p for p in f.objs if p.category == o.category]
        distractors = [p.id for p in same if p.id != o.id]
        found: list[tuple[str, str, str, SceneObject]] = []
        for lm in f.unique_landmarks(exclude=o.id):
            if f.extreme(o, lm, "closest", same):
                found.append((f"the {o.category} that is closest to the {lm.category}", "horizontal", "closest", lm))
            if f.extreme(o, lm, "farthest", same):
                found.append((f"find the {o.category} that is farthest from the {lm.category}", "horizontal", "farthest", lm))
            if o.support == lm.id and sum(p.support == lm.id for p in same) == 1:
                found.append((f"the {o.category} that is on the {lm.category}", "support", "supported-by", lm))
            if lm.support == o.id:
                found.append((f"the {o.category} that is supporting the {lm.category}", "support", "supporting", lm))
            if lm.category in _FRONT_CATS and lm.support is None:
                fronts = {p.id: _front_angle(lm, p) for p in same}
                for word, rtype, test, rival in (("in front of", "front", lambda a: a < 45, lambda a: a > 90),
                                                 ("behind", "back", lambda a: a > 135, lambda a: a < 90)):
                    if test(fronts[o.id]) and all(rival(fronts[d]) for d in distractors):
                        found.append((f"the {o.category} that is {word} the {lm.category}", "allocentric", rtype, lm))
        for utt, coarse, rtype, lm in found:
            out.append({"scan_id": f.scene.scene_id, "target_id": o.id, "distractor_ids": distractors, "utterance": utt,
                        "stimulus_id": _stimulus(f.scene.scene_id, o.category, o.id, distractors),
                        "coarse_reference_type": coarse, "reference_type": rtype, "instance_type": o.category,
                        "anchors_types": [lm.category], "anchor_ids": [lm.id], "tokens": tokenize(utt), "dataset": "sr3d",
                        "mentions_target_class": True, "correct_guess": True, "is_train": split == "train"})
    return out


def _front_angle(anchor: SceneObject, o: SceneObject) -> float:
    """Angle in degrees between the anchor's front direction and the direction to `o` (floor plane)."""
    v = o.position[:2] - anchor.position[:2]
    n = np.linalg.norm(v)
    if n < 1e-9:
        return 90.0
    return math.degrees(math.acos(float(np.clip(v @ anchor.front / n, -1, 1))))


def annotate_scene(scene: Scene, visible_pixels: dict[int, int], min_pixels: int, split: str,
                   rng: np.random.Generator, scene_index: int) -> dict[str, list[dict]]:
    """All annotation records of one scene, keyed by benchmark."""
    f = SceneFacts(scene, visible_pixels, min_pixels)
    sqa_q, sqa_a = sqa3d(f, split, rng, scene_index)
    return {"scanqa": scanqa(f, split, rng), "sqa3d_questions": sqa_q, "sqa3d_annotations": sqa_a,
            "scanrefer": scanrefer(f), "multi3drefer": multi3drefer(f, rng), "nr3d": nr3d(f, split, rng),
            "sr3d": sr3d(f, split)}
