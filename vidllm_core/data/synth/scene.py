"""Scene model of synthrooms: a box-shaped room, objects made of oriented boxes, random layouts and layout files.

Reference: issue 3 (synthrooms) items 1, 2 and 7. World frame: metres, z up, floor at z=0, room spans
[0, W] x [0, D] x [0, H] (origin at the south-west floor corner); an object's yaw turns its front (local +y)
to the world direction (-sin yaw, cos yaw).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidllm_core.data.synth.catalog import CATEGORIES, COLOURS, FLOOR_LAMP_HEIGHT, SUPPORTS, build_parts
from vidllm_core.errors import DataError

WALLS = ("south", "east", "north", "west")  # y=0, x=W, y=D, x=0
WALL_GAP = 0.05  # clearance between a wall-placed object and its wall (features protrude at most 0.04)
MARGIN = 0.05  # clearance between randomly placed objects


@dataclass
class Box:
    """An oriented box primitive (rotation about z only), in world coordinates."""

    center: np.ndarray  # (3,)
    size: np.ndarray  # (3,) full extents along the box's local axes
    yaw: float
    rgb: np.ndarray  # (3,) in [0, 1]
    object_id: int
    part: str

    def corners(self) -> np.ndarray:
        """(8, 3) world corners."""
        sx, sy, sz = self.size / 2
        local = np.array([[x, y, z] for x in (-sx, sx) for y in (-sy, sy) for z in (-sz, sz)])
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        return local @ rot.T + self.center


@dataclass
class SceneObject:
    """An object: category, colour, base position (footprint centre, base height), yaw, overall size, parts."""

    id: int
    category: str
    colour: str
    position: np.ndarray  # (3,) footprint centre x, y and base z
    yaw: float
    size: np.ndarray  # (3,) width, depth, height (local axes)
    support: int | None = None
    wall: str | None = None
    parts: list[Box] = field(default_factory=list)

    def build(self) -> None:
        """(Re)build the world-space boxes from the catalogue."""
        base = np.asarray(COLOURS[self.colour], dtype=np.float64) / 255.0
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        self.parts = []
        for p in build_parts(self.category, tuple(float(v) for v in self.size), on_floor=self.support is None):
            centre = self.position + rot @ np.asarray(p.center, dtype=np.float64)
            rgb = np.clip(base * p.shade + (0.08 if p.shade > 1 else 0.0), 0.0, 1.0)
            self.parts.append(Box(centre, np.asarray(p.size, dtype=np.float64), self.yaw + p.yaw, rgb, self.id, p.name))

    def footprint(self, pad: float = 0.0) -> np.ndarray:
        """(4, 2) corners of the oriented footprint rectangle, grown by `pad`."""
        hw, hd = self.size[0] / 2 + pad, self.size[1] / 2 + pad
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        local = np.array([[-hw, -hd], [hw, -hd], [hw, hd], [-hw, hd]])
        return local @ np.array([[c, s], [-s, c]]) + self.position[:2]

    @property
    def z_range(self) -> tuple[float, float]:
        return float(self.position[2]), float(self.position[2] + self.size[2])

    @property
    def front(self) -> np.ndarray:
        return np.array([-math.sin(self.yaw), math.cos(self.yaw)])

    def aabb(self) -> tuple[np.ndarray, np.ndarray]:
        """Axis-aligned box (centre, size) of all parts, world frame (ScanRefer GT-box convention)."""
        pts = np.concatenate([b.corners() for b in self.parts])
        lo, hi = pts.min(0), pts.max(0)
        return (lo + hi) / 2, hi - lo

    def obb_center(self) -> np.ndarray:
        return self.position + np.array([0.0, 0.0, self.size[2] / 2])


@dataclass
class Room:
    """The room box and its procedural texture parameters."""

    width: float
    depth: float
    height: float
    floor_style: str = "planks"  # or "tiles"
    floor_rgb: tuple[tuple[float, float, float], tuple[float, float, float]] = ((0.55, 0.4, 0.25), (0.45, 0.32, 0.2))
    wall_rgb: tuple[tuple[float, float, float], ...] = ((0.85, 0.83, 0.78),) * 4
    ceiling_rgb: tuple[float, float, float] = (0.92, 0.92, 0.9)
    tile: float = 0.2
    texture_seed: int = 0

    @property
    def size(self) -> np.ndarray:
        return np.array([self.width, self.depth, self.height])


@dataclass
class Scene:
    scene_id: str
    room: Room
    objects: list[SceneObject]

    def boxes(self) -> list[Box]:
        return [b for o in self.objects for b in o.parts]


# --------------------------------------------------------------------------------------------- geometry tests
def rects_overlap(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> bool:
    """Separating-axis test for two convex quads (4, 2); touching edges do not count as overlap."""
    for poly in (a, b):
        for i in range(4):
            edge = poly[(i + 1) % 4] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() <= pb.min() + tol * np.linalg.norm(axis) or pb.max() <= pa.min() + tol * np.linalg.norm(axis):
                return False
    return True


def objects_overlap(a: SceneObject, b: SceneObject, pad: float = 0.0) -> bool:
    za, zb = a.z_range, b.z_range
    if za[1] <= zb[0] + 1e-9 or zb[1] <= za[0] + 1e-9:
        return False
    return rects_overlap(a.footprint(pad), b.footprint(pad))


def inside_room(o: SceneObject, room: Room, pad: float = 0.0) -> bool:
    fp = o.footprint()
    return bool(fp[:, 0].min() >= pad - 1e-9 and fp[:, 1].min() >= pad - 1e-9 and fp[:, 0].max() <= room.width - pad + 1e-9
                and fp[:, 1].max() <= room.depth - pad + 1e-9 and o.z_range[1] <= room.height + 1e-9)


def _wall_pose(room: Room, wall: str, offset: float, dist: float) -> tuple[float, float, float]:
    """(x, y, yaw) of an object whose back faces `wall`, centre `offset` along it and `dist` away from it."""
    if wall == "south":
        return offset, dist, 0.0
    if wall == "north":
        return offset, room.depth - dist, math.pi
    if wall == "west":
        return dist, offset, -math.pi / 2
    return room.width - dist, offset, math.pi / 2


def wall_length(room: Room, wall: str) -> float:
    return room.width if wall in ("south", "north") else room.depth


# --------------------------------------------------------------------------------------------- random scenes
_RECIPES = {
    "bedroom": (["bed", "nightstand", "lamp"],
                ["nightstand", "chair", "cabinet", "plant", "desk", "monitor", "bookshelf", "trash can", "chair", "lamp"]),
    "living room": (["sofa", "table", "chair", "chair"],
                    ["chair", "lamp", "plant", "bookshelf", "cabinet", "table", "trash can", "chair", "sofa", "plant"]),
    "office": (["desk", "monitor", "chair"],
               ["desk", "monitor", "chair", "bookshelf", "cabinet", "plant", "trash can", "table", "chair", "lamp"]),
}
_PLACE_ORDER = {"feature": 0, "wall": 1, "free": 2, "corner": 3, "support": 4}


def _pastel(rng: np.random.Generator) -> tuple[float, float, float]:
    return tuple(float(v) for v in np.clip(rng.uniform(0.62, 0.95, 3) * rng.uniform(0.9, 1.0), 0, 1))


def sample_room(rng: np.random.Generator) -> Room:
    w, d = (float(round(v, 2)) for v in rng.uniform(3.0, 8.0, 2))
    h = float(round(rng.uniform(2.4, 3.2), 2))
    wood = rng.uniform([0.35, 0.22, 0.1], [0.7, 0.5, 0.3])
    style = "planks" if rng.random() < 0.6 else "tiles"
    alt = wood * rng.uniform(0.7, 0.85) if style == "planks" else np.clip(rng.uniform(0.6, 0.95, 3), 0, 1)
    walls = tuple(_pastel(rng) for _ in range(4))
    return Room(w, d, h, style, (tuple(float(v) for v in wood), tuple(float(v) for v in alt)), walls,
                tuple(float(v) for v in rng.uniform(0.85, 0.95, 3)), float(rng.uniform(0.15, 0.5)),
                int(rng.integers(0, 2**31 - 1)))


def _random_size(rng: np.random.Generator, category: str, on_floor: bool) -> np.ndarray:
    cat = CATEGORIES[category]
    h = cat.height if not (category == "lamp" and on_floor) else FLOOR_LAMP_HEIGHT
    return np.round(np.array([rng.uniform(*cat.width), rng.uniform(*cat.depth), rng.uniform(*h)]), 3)


def _fits(o: SceneObject, room: Room, placed: list[SceneObject], keepout: list[np.ndarray]) -> bool:
    if not inside_room(o, room, pad=0.0):
        return False
    if o.category not in ("door", "window"):
        fp = o.footprint()
        if fp[:, 0].min() < WALL_GAP - 1e-9 or fp[:, 1].min() < WALL_GAP - 1e-9 or \
                fp[:, 0].max() > room.width - WALL_GAP + 1e-9 or fp[:, 1].max() > room.depth - WALL_GAP + 1e-9:
            return False
        if any(rects_overlap(o.footprint(), k) for k in keepout):
            return False
    pad = 0.0 if o.category in ("door", "window") or o.support is not None else MARGIN / 2
    return not any(objects_overlap(o, p, pad=pad if p.support is None else 0.0) for p in placed
                   if not (o.support is not None and p.id == o.support))


def _try_place(rng: np.random.Generator, category: str, colour: str, oid: int, room: Room,
               placed: list[SceneObject], keepout: list[np.ndarray]) -> SceneObject | None:
    cat = CATEGORIES[category]
    for _ in range(40):
        on_floor = True
        support = None
        if cat.placement == "support":
            hosts = [p for p in placed if p.category in SUPPORTS[category]]
            if hosts and (category == "monitor" or rng.random() < 0.8):
                support = hosts[int(rng.integers(len(hosts)))]
                on_floor = False
            elif category == "monitor":
                return None
        size = _random_size(rng, category, on_floor)
        if support is not None:
            sw, sd = support.size[0] / 2 - size[0] / 2 - 0.02, support.size[1] / 2 - size[1] / 2 - 0.02
            if sw < 0 or sd < 0:
                continue
            lx = rng.uniform(-sw, sw)
            ly = rng.uniform(-sd, min(sd, -sd + 0.15)) if category == "monitor" and support.category == "desk" else rng.uniform(-sd, sd)
            cs, sn = math.cos(support.yaw), math.sin(support.yaw)
            xy = support.position[:2] + np.array([cs * lx - sn * ly, sn * lx + cs * ly])
            top = support.position[2] + support.size[2]
            yaw = support.yaw + (rng.uniform(-0.3, 0.3) if category == "monitor" else rng.uniform(-math.pi, math.pi))
            o = SceneObject(oid, category, colour, np.array([xy[0], xy[1], top]), float(yaw), size, support=support.id)
        elif cat.placement in ("wall", "feature"):
            wall = WALLS[int(rng.integers(4))]
            length = wall_length(room, wall)
            half = size[0] / 2 + 0.1
            if length < 2 * half:
                continue
            off = rng.uniform(half, length - half)
            dist = size[1] / 2 + (0.0 if cat.placement == "feature" else WALL_GAP + 0.02 * rng.random())
            x, y, yaw = _wall_pose(room, wall, off, dist)
            z = 0.0 if category != "window" else float(round(rng.uniform(0.8, 1.0), 2))
            if category == "window" and z + size[2] > room.height - 0.15:
                continue
            o = SceneObject(oid, category, colour, np.array([x, y, z]), float(yaw), size, wall=wall)
        elif cat.placement == "corner" and rng.random() < 0.7:
            cx = rng.choice([WALL_GAP + size[0] * 0.75, room.width - WALL_GAP - size[0] * 0.75])
            cy = rng.choice([WALL_GAP + size[1] * 0.75, room.depth - WALL_GAP - size[1] * 0.75])
            o = SceneObject(oid, category, colour, np.array([cx, cy, 0.0]), float(rng.uniform(-0.2, 0.2)), size)
        elif category == "chair" and rng.random() < 0.75 and any(p.category in ("table", "desk") for p in placed):
            hosts = [p for p in placed if p.category in ("table", "desk")]
            host = hosts[int(rng.integers(len(hosts)))]
            side = 0 if host.category == "desk" else int(rng.integers(4))
            ang = host.yaw + side * math.pi / 2
            ext = (host.size[1] if side % 2 == 0 else host.size[0]) / 2
            along = (host.size[0] if side % 2 == 0 else host.size[1]) / 2 - size[0] / 2
            direction = np.array([-math.sin(ang), math.cos(ang)])
            tangent = np.array([math.cos(ang), math.sin(ang)])
            xy = host.position[:2] + direction * (ext + size[1] / 2 + rng.uniform(0.08, 0.3)) + \
                tangent * rng.uniform(-max(along, 0), max(along, 0))
            yaw = ang + math.pi + rng.uniform(-0.35, 0.35)  # face the host
            o = SceneObject(oid, category, colour, np.array([xy[0], xy[1], 0.0]), float(yaw), size)
        else:
            xy = rng.uniform([WALL_GAP + 0.3, WALL_GAP + 0.3], [room.width - WALL_GAP - 0.3, room.depth - WALL_GAP - 0.3])
            if category == "table":
                xy = np.array([room.width, room.depth]) / 2 + rng.normal(0, 0.35, 2) * np.array([room.width, room.depth]) / 4
            yaw = rng.integers(4) * math.pi / 2 + rng.uniform(-0.25, 0.25) if category != "chair" else rng.uniform(-math.pi, math.pi)
            o = SceneObject(oid, category, colour, np.array([xy[0], xy[1], 0.0]), float(yaw), size)
        o.size = np.asarray(o.size, dtype=np.float64)
        o.position = np.round(np.asarray(o.position, dtype=np.float64), 4)
        o.yaw = float(round(math.atan2(math.sin(o.yaw), math.cos(o.yaw)), 5))
        if _fits(o, room, placed, keepout):
            o.build()
            return o
    return None


def _door_keepout(door: SceneObject) -> np.ndarray:
    """Floor rectangle in front of a door kept free so the door stays reachable."""
    k = SceneObject(-1, "door", "white", np.r_[door.position[:2] + door.front * 0.5, 0.0], door.yaw,
                    np.array([door.size[0] + 0.2, 0.9, 2.0]))
    return k.footprint()


def sample_scene(rng: np.random.Generator, scene_id: str) -> Scene:
    """A random room with a door, 0-2 windows and 5-14 objects placed without interpenetration."""
    room = sample_room(rng)
    kind = list(_RECIPES)[int(rng.integers(len(_RECIPES)))]
    must, pool = _RECIPES[kind]
    n_target = int(np.clip(round(room.width * room.depth / 2.2), 5, 14))
    cats = list(must) + [pool[int(i)] for i in rng.integers(0, len(pool), size=max(0, n_target - len(must)))]
    cats = ["door"] + ["window"] * int(rng.integers(0, 3)) + cats
    cats.sort(key=lambda c: (_PLACE_ORDER[CATEGORIES[c].placement], -np.prod([sum(CATEGORIES[c].width), sum(CATEGORIES[c].depth)])))
    placed: list[SceneObject] = []
    keepout: list[np.ndarray] = []
    for category in cats:
        allowed = CATEGORIES[category].colours
        colour = allowed[int(rng.integers(len(allowed)))]
        o = _try_place(rng, category, colour, len(placed), room, placed, keepout)
        if o is None:
            continue
        placed.append(o)
        if category == "door":
            keepout.append(_door_keepout(o))
    return Scene(scene_id, room, placed)


# --------------------------------------------------------------------------------------------- layout files
def _num_list(v: Any, n: tuple[int, ...], what: str) -> list[float]:
    if not isinstance(v, (list, tuple)) or len(v) not in n or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v):
        raise DataError(f"{what} must be a list of {' or '.join(map(str, n))} numbers, got {json.dumps(v)}")
    return [float(x) for x in v]


def scene_from_layout(layout: Any, scene_id: str, source: str = "layout") -> Scene:
    """Build a scene from a layout dict (schema in docs/synth.md); raise DataError naming the first problem."""
    if not isinstance(layout, dict):
        raise DataError(f"{source}: top level must be a JSON object with 'room' and 'objects'")
    room_d = layout.get("room")
    if not isinstance(room_d, dict) or "size" not in room_d:
        raise DataError(f"{source}: missing 'room': {{'size': [width, depth, height]}}")
    w, d, h = _num_list(room_d["size"], (3,), f"{source}: room.size")
    if not (1.5 <= w <= 20 and 1.5 <= d <= 20 and 2.0 <= h <= 6):
        raise DataError(f"{source}: room.size {[w, d, h]} out of range (width/depth 1.5-20 m, height 2-6 m)")
    room = Room(w, d, h, texture_seed=int(room_d.get("texture_seed", 0)) if isinstance(room_d.get("texture_seed", 0), int) else 0)
    objs_d = layout.get("objects")
    if not isinstance(objs_d, list):
        raise DataError(f"{source}: 'objects' must be a list")
    feats = layout.get("features", [])
    if not isinstance(feats, list):
        raise DataError(f"{source}: 'features' must be a list")
    objects: list[SceneObject] = []
    entries = [("feature", i, f) for i, f in enumerate(feats)] + [("object", i, o) for i, o in enumerate(objs_d)]
    index_of_object: dict[int, int] = {}
    for kind, i, spec in entries:
        where = f"{source}: {kind} {i}"
        if not isinstance(spec, dict):
            raise DataError(f"{where} must be a JSON object")
        cat = spec.get("category")
        if cat not in CATEGORIES:
            raise DataError(f"{where}: unknown category {json.dumps(cat)} (known: {', '.join(sorted(CATEGORIES))})")
        is_feature = CATEGORIES[cat].placement == "feature"
        if is_feature != (kind == "feature"):
            raise DataError(f"{where}: category {cat!r} belongs in " + ("'features'" if is_feature else "'objects'"))
        colour = spec.get("colour", spec.get("color", CATEGORIES[cat].colours[0]))
        if colour not in COLOURS:
            raise DataError(f"{where}: unknown colour {json.dumps(colour)} (known: {', '.join(COLOURS)})")
        support = spec.get("on")
        default = np.array([np.mean(CATEGORIES[cat].width), np.mean(CATEGORIES[cat].depth),
                            np.mean(FLOOR_LAMP_HEIGHT if cat == "lamp" and support is None else CATEGORIES[cat].height)])
        size = np.array(_num_list(spec["size"], (3,), f"{where}: size")) if "size" in spec else default
        if cat in ("door", "window"):
            size[1] = default[1]
        if (size <= 0).any() or (size > 10).any():
            raise DataError(f"{where}: size {size.tolist()} must be positive and at most 10 m")
        oid = len(objects)
        if is_feature:
            wall = spec.get("wall")
            if wall not in WALLS:
                raise DataError(f"{where}: 'wall' must be one of {', '.join(WALLS)}, got {json.dumps(wall)}")
            off = _num_list([spec.get("offset")], (1,), f"{where}: offset")[0]
            x, y, yaw = _wall_pose(room, wall, off, size[1] / 2)
            z = 0.0 if cat == "door" else _num_list([spec.get("sill", 0.9)], (1,), f"{where}: sill")[0]
            o = SceneObject(oid, cat, colour, np.array([x, y, z]), yaw, size, wall=wall)
        else:
            pos = _num_list(spec.get("position"), (2, 3), f"{where}: position")
            yaw = math.radians(_num_list([spec.get("yaw", 0.0)], (1,), f"{where}: yaw (degrees)")[0])
            z = 0.0
            sup_id = None
            if support is not None:
                if not isinstance(support, int) or isinstance(support, bool) or support not in index_of_object:
                    raise DataError(f"{where}: 'on' must be the index of an earlier object in 'objects', got {json.dumps(support)}")
                host = objects[index_of_object[support]]
                local = np.array([[math.cos(host.yaw), math.sin(host.yaw)], [-math.sin(host.yaw), math.cos(host.yaw)]]) @ \
                    (np.array(pos[:2]) - host.position[:2])
                if abs(local[0]) > host.size[0] / 2 or abs(local[1]) > host.size[1] / 2:
                    raise DataError(f"{where} ({cat}): position {pos[:2]} is not on top of object {support} ({host.category})")
                z, sup_id = float(host.position[2] + host.size[2]), host.id
            elif len(pos) == 3 and abs(pos[2]) > 1e-6:
                raise DataError(f"{where} ({cat}): z must be 0 (on the floor) unless 'on' names a supporting object")
            o = SceneObject(oid, cat, colour, np.array([pos[0], pos[1], z]), yaw, size, support=sup_id)
            index_of_object[i] = oid
        o.build()
        if not inside_room(o, room):
            raise DataError(f"{where} ({cat}) is outside the room (x 0-{w:g}, y 0-{d:g}, height {h:g} m)")
        for other in objects:
            if other.id == o.support or o.id == other.support:
                continue
            if objects_overlap(o, other):
                raise DataError(f"{where} ({cat}) overlaps {_describe_index(other, objects, index_of_object)}")
        objects.append(o)
    return Scene(scene_id, room, objects)


def _describe_index(o: SceneObject, objects: list[SceneObject], index_of_object: dict[int, int]) -> str:
    for i, oid in index_of_object.items():
        if oid == o.id:
            return f"object {i} ({o.category})"
    return f"feature {o.id} ({o.category})"


def load_layout(path: str | Path, scene_id: str) -> Scene:
    """Read and validate a layout JSON file (see docs/synth.md)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"layout file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read layout file {path}: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise DataError(f"layout file {path} is not valid JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    return scene_from_layout(data, scene_id, source=f"layout {path.name}")
