"""Object catalogue of synthrooms: ScanNet-vocabulary categories built from boxes, size ranges, named colours.

Reference: issue 3 (synthrooms) items 1-2; category names follow ScanNet raw labels (scannetv2-labels.combined.tsv).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Named colours (sRGB 0-255). Every object has exactly one; its parts are shades of it.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (196, 36, 36),
    "green": (46, 150, 62),
    "blue": (38, 78, 200),
    "yellow": (232, 202, 40),
    "white": (236, 236, 232),
    "black": (34, 34, 36),
    "brown": (122, 76, 40),
    "gray": (128, 128, 128),
    "orange": (236, 128, 28),
    "purple": (128, 58, 160),
    "pink": (236, 128, 172),
}


@dataclass(frozen=True)
class Category:
    """A category: ScanNet raw label, footprint/height ranges in metres, placement habit."""

    name: str
    plural: str
    width: tuple[float, float]  # local x extent
    depth: tuple[float, float]  # local y extent (front faces local +y)
    height: tuple[float, float]
    placement: str  # "wall" (back against a wall), "free", "corner", "support" (on a desk/table/nightstand), "feature"
    colours: tuple[str, ...]


_ALL = tuple(COLOURS)
_WOOD = ("brown", "white", "black", "gray", "red", "blue", "green", "yellow", "orange", "purple", "pink")

CATEGORIES: dict[str, Category] = {c.name: c for c in [
    Category("chair", "chairs", (0.42, 0.55), (0.42, 0.55), (0.80, 1.00), "free", _ALL),
    Category("table", "tables", (0.80, 1.60), (0.60, 1.00), (0.70, 0.78), "free", _WOOD),
    Category("desk", "desks", (1.00, 1.60), (0.55, 0.80), (0.72, 0.78), "wall", _WOOD),
    Category("bed", "beds", (1.00, 1.80), (1.90, 2.10), (0.90, 1.20), "wall", _ALL),
    Category("sofa", "sofas", (1.60, 2.40), (0.80, 1.00), (0.75, 0.90), "wall", _ALL),
    Category("cabinet", "cabinets", (0.60, 1.20), (0.40, 0.60), (0.80, 1.20), "wall", _WOOD),
    Category("bookshelf", "bookshelves", (0.60, 1.20), (0.28, 0.40), (1.60, 2.00), "wall", _WOOD),
    Category("nightstand", "nightstands", (0.40, 0.55), (0.35, 0.45), (0.45, 0.60), "wall", _WOOD),
    Category("lamp", "lamps", (0.22, 0.32), (0.22, 0.32), (0.45, 0.60), "support", _ALL),
    Category("monitor", "monitors", (0.45, 0.65), (0.16, 0.20), (0.35, 0.50), "support", ("black", "white", "gray")),
    Category("plant", "plants", (0.30, 0.45), (0.30, 0.45), (0.60, 1.40), "corner", ("green", "yellow", "red", "orange", "purple", "pink")),
    Category("trash can", "trash cans", (0.25, 0.35), (0.25, 0.35), (0.30, 0.50), "free", _ALL),
    Category("door", "doors", (0.80, 0.95), (0.04, 0.04), (2.00, 2.10), "feature", ("brown", "white", "gray")),
    Category("window", "windows", (0.80, 1.60), (0.03, 0.03), (0.90, 1.30), "feature", ("white", "gray", "black")),
]}

#: Floor-lamp height range (a lamp with no support stands on the floor).
FLOOR_LAMP_HEIGHT = (1.40, 1.70)
#: Categories that can carry a supported object on their top surface.
SUPPORTS = {"monitor": ("desk", "table"), "lamp": ("nightstand", "table", "desk")}


@dataclass(frozen=True)
class Part:
    """One box of an object in the object's local frame (z from the object's base, front = +y)."""

    name: str
    center: tuple[float, float, float]
    size: tuple[float, float, float]
    shade: float = 1.0
    yaw: float = 0.0  # extra rotation about z relative to the object, radians


def _legs(w: float, d: float, h: float, t: float, inset: float, shade: float = 0.6) -> list[Part]:
    xs, ys = w / 2 - inset - t / 2, d / 2 - inset - t / 2
    return [Part("leg", (sx * xs, sy * ys, h / 2), (t, t, h), shade) for sx in (-1, 1) for sy in (-1, 1)]


def build_parts(category: str, size: tuple[float, float, float], on_floor: bool = True) -> list[Part]:
    """Boxes making up an object of `category` with overall extent `size` = (width, depth, height)."""
    w, d, h = size
    if category == "chair":
        seat_z = min(0.46, 0.55 * h)
        return [Part("seat", (0, 0, seat_z - 0.03), (w, d, 0.06)),
                Part("back", (0, -d / 2 + 0.03, (seat_z + h) / 2), (w, 0.06, h - seat_z), 0.9),
                *_legs(w, d, seat_z - 0.06, 0.04, 0.02)]
    if category == "table":
        return [Part("top", (0, 0, h - 0.025), (w, d, 0.05)), *_legs(w, d, h - 0.05, 0.06, 0.04)]
    if category == "desk":
        return [Part("top", (0, 0, h - 0.02), (w, d, 0.04)),
                Part("side", (-w / 2 + 0.02, 0, (h - 0.04) / 2), (0.04, d - 0.04, h - 0.04), 0.75),
                Part("side", (w / 2 - 0.02, 0, (h - 0.04) / 2), (0.04, d - 0.04, h - 0.04), 0.75),
                Part("panel", (0, -d / 2 + 0.04, h * 0.55), (w - 0.08, 0.02, h * 0.5), 0.7)]
    if category == "bed":
        return [Part("base", (0, 0, 0.15), (w, d, 0.30), 0.7),
                Part("mattress", (0, 0.03, 0.40), (w - 0.06, d - 0.12, 0.20), 1.15),
                Part("headboard", (0, -d / 2 + 0.04, h / 2), (w, 0.08, h), 0.85),
                Part("pillow", (0, -d / 2 + 0.35, 0.55), (min(0.6, w - 0.2), 0.32, 0.10), 1.3)]
    if category == "sofa":
        arm = 0.18
        return [Part("seat", (0, 0.05, 0.21), (w - 2 * arm, d - 0.1, 0.42)),
                Part("back", (0, -d / 2 + 0.1, h / 2), (w, 0.2, h), 0.85),
                Part("arm", (-w / 2 + arm / 2, 0.05, 0.3), (arm, d - 0.1, 0.6), 0.8),
                Part("arm", (w / 2 - arm / 2, 0.05, 0.3), (arm, d - 0.1, 0.6), 0.8)]
    if category == "cabinet":
        return [Part("body", (0, -0.01, h / 2), (w, d - 0.02, h)),
                Part("door", (-w / 4, d / 2 - 0.01, h / 2), (w / 2 - 0.03, 0.02, h - 0.06), 0.8),
                Part("door", (w / 4, d / 2 - 0.01, h / 2), (w / 2 - 0.03, 0.02, h - 0.06), 0.8)]
    if category == "bookshelf":
        t = 0.03
        parts = [Part("side", (-w / 2 + t / 2, 0, h / 2), (t, d, h)),
                 Part("side", (w / 2 - t / 2, 0, h / 2), (t, d, h)),
                 Part("top", (0, 0, h - t / 2), (w - 2 * t, d, t)),
                 Part("back", (0, -d / 2 + 0.01, h / 2), (w - 2 * t, 0.02, h - t), 0.55)]
        n = 4
        for k in range(n):
            z = 0.05 + k * (h - 0.1) / n
            parts.append(Part("shelf", (0, 0.01, z + t / 2), (w - 2 * t, d - 0.02, t), 0.9))
        return parts
    if category == "nightstand":
        return [Part("body", (0, -0.01, h / 2), (w, d - 0.02, h)),
                Part("drawer", (0, d / 2 - 0.01, h * 0.7), (w - 0.06, 0.02, h * 0.3), 0.8)]
    if category == "lamp":
        shade_h = 0.22 if on_floor is False else 0.3
        return [Part("base", (0, 0, 0.015), (w * 0.7, d * 0.7, 0.03), 0.6),
                Part("pole", (0, 0, (h - shade_h) / 2), (0.03, 0.03, h - shade_h), 0.5),
                Part("shade", (0, 0, h - shade_h / 2), (w, d, shade_h), 1.2)]
    if category == "monitor":
        return [Part("stand", (0, 0, 0.01), (0.22, d, 0.02), 0.6),
                Part("neck", (0, -0.02, 0.07), (0.05, 0.03, 0.12), 0.6),
                Part("frame", (0, 0.0, 0.12 + (h - 0.12) / 2), (w, 0.03, h - 0.12)),
                Part("screen", (0, 0.02, 0.12 + (h - 0.12) / 2), (w - 0.04, 0.01, h - 0.16), 0.25)]
    if category == "plant":
        pot_h = min(0.35, 0.3 * h)
        fol = h - pot_h
        return [Part("pot", (0, 0, pot_h / 2), (w * 0.7, d * 0.7, pot_h), 0.7),
                Part("foliage", (0, 0, pot_h + fol * 0.4), (w * 0.7, d * 0.7, fol * 0.8), 1.0, np.pi / 4),
                Part("foliage", (0, 0, pot_h + fol * 0.55), (w * 0.85, d * 0.85, fol * 0.5), 1.15)]
    if category == "trash can":
        return [Part("body", (0, 0, (h - 0.03) / 2), (w * 0.92, d * 0.92, h - 0.03)),
                Part("rim", (0, 0, h - 0.015), (w, d, 0.03), 0.8)]
    if category == "door":
        return [Part("panel", (0, -0.01, h / 2), (w, 0.02, h)),
                Part("handle", (w / 2 - 0.12, 0.01, 1.0), (0.1, 0.02, 0.03), 0.5)]
    if category == "window":
        return [Part("frame", (0, -0.005, h / 2), (w, 0.02, h)),
                Part("glass", (0, 0.01, h / 2), (w - 0.1, 0.01, h - 0.1), 1.35)]
    raise KeyError(category)
