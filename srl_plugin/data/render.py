"""Procedural MOVi-like clips: textured shapes moving over a textured background (docs/METHODS.md §1.1).

A clip shows 3-10 objects (disc, box, triangle, star, blob) with flat or striped / checkered colours, moving
linearly with bounces off the borders of a "world" slightly larger than the view, rotating and changing
scale, painted far-to-near (depth-ordered occlusion), optionally filmed by a panning camera. The ground
truth is an instance id map per frame: 0 = background, ids 1..n stable over the clip (the ids are a random
permutation of the depth order, so an id says nothing about depth).

Rasterisation works on coordinate grids restricted to each object's bounding box (no per-pixel Python),
so a 24-frame 128x128 clip takes a few milliseconds.

Difficulty knobs of `SyntheticConfig` (all lengths are fractions of the frame size):
- object count: `num_objects` (inclusive range);
- colour: `distinct_hues` (the objects of a clip get hues evenly spaced round the colour wheel instead of
  independent random hues, so no two objects of a clip share a colour);
- texture: `object_texture` (probability that an object is striped / checkered instead of flat) and
  `background_texture` (contrast of the background pattern, 0 = flat);
- occlusion: `object_radius` (bigger objects overlap more) and `spawn_spread` (objects start inside the
  central `spawn_spread` fraction of the world; smaller = more crowded);
- motion: `speed` (per frame), `rotation` (max rad / frame), `scale_change` (max relative change over the
  clip), `camera_pan` (max camera speed per frame).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

SHAPES = ("disc", "box", "triangle", "star", "blob")
OBJECT_TEXTURES = ("stripes", "checker")
BACKGROUND_PATTERNS = ("stripes", "checker", "waves")
SPLIT_CODES = {"train": 0, "validation": 1}
MAX_INSTANCES = 255


@dataclass(frozen=True)
class SyntheticConfig:
    """Generation parameters (see the module docstring for the difficulty knobs)."""

    frames: int = 24
    size: int = 128
    num_objects: tuple[int, int] = (3, 10)
    shapes: tuple[str, ...] = SHAPES
    object_radius: tuple[float, float] = (0.06, 0.15)
    spawn_spread: float = 0.8
    object_texture: float = 0.7
    background_texture: float = 1.0
    speed: tuple[float, float] = (0.004, 0.02)
    rotation: float = 0.08
    scale_change: float = 0.3
    camera_pan: float = 0.006
    distinct_hues: bool = False

    def __post_init__(self) -> None:
        low, high = self.num_objects
        if not 1 <= low <= high <= MAX_INSTANCES:
            raise ValueError(f"num_objects must satisfy 1 <= min <= max <= {MAX_INSTANCES}, got {self.num_objects}")
        unknown = set(self.shapes) - set(SHAPES)
        if unknown or not self.shapes:
            raise ValueError(f"shapes must be a non-empty subset of {SHAPES}, got {self.shapes}")
        if self.frames < 1 or self.size < 8:
            raise ValueError(f"need frames >= 1 and size >= 8, got frames={self.frames}, size={self.size}")
        if not 0 < self.object_radius[0] <= self.object_radius[1] < 0.5:
            raise ValueError(f"object_radius must satisfy 0 < min <= max < 0.5, got {self.object_radius}")
        if not 0 <= self.spawn_spread <= 1:
            raise ValueError(f"spawn_spread must be in [0, 1], got {self.spawn_spread}")

    @classmethod
    def from_preset(cls, preset: str, **overrides: Any) -> "SyntheticConfig":
        """The named preset (`easy`, `movi_c_like`) with some fields replaced (sequences such as lists or
        OmegaConf `ListConfig`s become tuples)."""
        if preset not in PRESETS:
            raise ValueError(f"unknown synthetic preset {preset!r}; choose one of {sorted(PRESETS)}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(overrides) - names
        if unknown:
            raise ValueError(f"unknown synthetic option(s) {sorted(unknown)}; valid: {sorted(names)}")
        fixed = {k: _as_tuple(v) for k, v in overrides.items() if v is not None}
        return dataclasses.replace(PRESETS[preset], **fixed)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly parameters (tuples as lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}


def _as_tuple(value: Any) -> Any:
    return tuple(value) if isinstance(value, Sequence) and not isinstance(value, str) else value


PRESETS: Mapping[str, SyntheticConfig] = {
    "easy": SyntheticConfig(
        num_objects=(3, 5), shapes=("disc", "box", "triangle"), object_radius=(0.1, 0.16), spawn_spread=1.0,
        object_texture=0.0, background_texture=0.0, speed=(0.004, 0.012), rotation=0.0, scale_change=0.0,
        camera_pan=0.0, distinct_hues=True,
    ),
    "movi_c_like": SyntheticConfig(),
}


@dataclass
class SceneObject:
    """One object; `centre` (T, 2) is (x, y) in world pixels, `angle` and `scale` are (T,)."""

    instance_id: int
    shape: str
    depth: float
    radius: float
    extent: float
    shape_params: np.ndarray
    centre: np.ndarray
    angle: np.ndarray
    scale: np.ndarray
    colours: np.ndarray
    texture: str | None
    texture_freq: float
    texture_angle: float


@dataclass
class Scene:
    """A sampled clip: background `world` (Hw, Ww, 3) float32, integer `camera` offsets (T, 2) as (x, y)."""

    config: SyntheticConfig
    world: np.ndarray
    camera: np.ndarray
    objects: list[SceneObject] = field(default_factory=list)


def video_rng(seed: int, split: str, index: int) -> np.random.Generator:
    """The generator of video `index` of `split`: independent of the shard layout and of the video count."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLIT_CODES[split], index]))


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV (each (n,), in [0, 1]) -> RGB (n, 3)."""
    k = (np.array([5.0, 3.0, 1.0]) + h[:, None] * 6.0) % 6.0
    return v[:, None] - v[:, None] * s[:, None] * np.clip(np.minimum(k, 4.0 - k), 0.0, 1.0)


def _bright_colours(rng: np.random.Generator, n: int, hue: float | None = None) -> np.ndarray:
    """(n, 3) saturated colours of random hues, or with the first one's hue fixed to `hue`."""
    hues = rng.random(n)
    if hue is not None:
        hues[0] = hue
    return _hsv_to_rgb(hues, rng.uniform(0.5, 1.0, n), rng.uniform(0.6, 1.0, n))


def _background(rng: np.random.Generator, config: SyntheticConfig, height: int, width: int) -> np.ndarray:
    """World texture (height, width, 3) float32 in [0, 1]: two dull colours mixed by a periodic pattern."""
    colours = _hsv_to_rgb(rng.random(2), rng.uniform(0.0, 0.4, 2), rng.uniform(0.15, 0.6, 2))
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32) / config.size
    pattern = BACKGROUND_PATTERNS[rng.integers(len(BACKGROUND_PATTERNS))]
    freq = rng.uniform(4.0, 12.0) * math.pi
    theta = rng.uniform(0.0, math.pi)
    if pattern == "stripes":
        weight = 0.5 + 0.5 * np.sin(freq * (xs * math.cos(theta) + ys * math.sin(theta)))
    elif pattern == "checker":
        weight = (np.sin(freq * xs) * np.sin(freq * ys) > 0).astype(np.float32)
    else:
        weight = np.zeros_like(xs)
        for _ in range(3):
            phi, f = rng.uniform(0.0, 2 * math.pi, 2), rng.uniform(2.0, 8.0) * math.pi
            weight += np.sin(f * (xs * math.cos(phi[0]) + ys * math.sin(phi[0])) + phi[1])
        weight = 0.5 + weight / 6.0
    weight = config.background_texture * weight[..., None]
    return ((1.0 - weight) * colours[0] + weight * colours[1]).astype(np.float32)


def _bounce(start: np.ndarray, velocity: np.ndarray, low: np.ndarray, high: np.ndarray, frames: int) -> np.ndarray:
    """Positions (T, 2) of a point moving at `velocity` that reflects off the box [low, high] per axis."""
    t = np.arange(frames, dtype=np.float64)[:, None]
    length = np.maximum(high - low, 1e-6)
    travelled = np.mod(start - low + velocity * t, 2.0 * length)
    return low + np.where(travelled <= length, travelled, 2.0 * length - travelled)


def _shape_params(rng: np.random.Generator, shape: str) -> tuple[np.ndarray, float]:
    """Per-object shape parameters and the extent (max distance of the shape from its centre, in radii)."""
    if shape == "box":
        half_sides = rng.uniform(0.55, 0.95, 2)
        return half_sides, float(np.hypot(*half_sides))
    if shape == "blob":
        amplitudes, phases = rng.uniform(0.0, 0.1, 3), rng.uniform(0.0, 2 * math.pi, 3)
        return np.concatenate([amplitudes, phases]), 0.75 + float(amplitudes.sum())
    return np.zeros(0), 1.0


def _sample_object(rng: np.random.Generator, config: SyntheticConfig, instance_id: int, depth: float,
                   world_size: np.ndarray, hue: float | None = None) -> SceneObject:
    size = config.size
    shape = config.shapes[rng.integers(len(config.shapes))]
    radius = rng.uniform(*config.object_radius) * size
    params, extent = _shape_params(rng, shape)
    scale_end = 1.0 + rng.uniform(-config.scale_change, config.scale_change)
    scale = np.linspace(1.0, scale_end, config.frames)
    reach = radius * extent * max(1.0, scale_end)
    low, high = np.full(2, reach), world_size - reach
    centre_world = world_size / 2.0
    start = centre_world + (rng.random(2) - 0.5) * config.spawn_spread * np.maximum(high - low, 0.0)
    direction = rng.uniform(0.0, 2 * math.pi)
    velocity = rng.uniform(*config.speed) * size * np.array([math.cos(direction), math.sin(direction)])
    angle = rng.uniform(0.0, 2 * math.pi) + rng.uniform(-config.rotation, config.rotation) * np.arange(config.frames)
    textured = rng.random() < config.object_texture
    return SceneObject(
        instance_id=instance_id, shape=shape, depth=depth, radius=radius, extent=extent, shape_params=params,
        centre=_bounce(start, velocity, low, np.maximum(high, low), config.frames), angle=angle, scale=scale,
        colours=_bright_colours(rng, 2, hue).astype(np.float32),
        texture=OBJECT_TEXTURES[rng.integers(len(OBJECT_TEXTURES))] if textured else None,
        texture_freq=rng.uniform(2.0, 5.0) * math.pi, texture_angle=rng.uniform(0.0, math.pi),
    )


def _spread_hues(rng: np.random.Generator, count: int) -> list[float]:
    """`count` hues evenly spaced round the colour wheel from a random start, in random order."""
    return list(np.mod(rng.random() + rng.permutation(count) / count, 1.0))


def sample_scene(rng: np.random.Generator, config: SyntheticConfig) -> Scene:
    """Draw a clip's background, camera path and objects from `rng`."""
    frames, size = config.frames, config.size
    pan_direction = rng.uniform(0.0, 2 * math.pi)
    pan = rng.uniform(0.0, config.camera_pan) * size * np.array([math.cos(pan_direction), math.sin(pan_direction)])
    travel = np.round(pan[None, :] * np.arange(frames)[:, None]).astype(np.int64)
    camera = travel - travel.min(axis=0)
    margin = camera.max(axis=0)
    world_size = np.array([size + margin[0], size + margin[1]], dtype=np.float64)
    world = _background(rng, config, size + int(margin[1]), size + int(margin[0]))
    count = int(rng.integers(config.num_objects[0], config.num_objects[1] + 1))
    ids = rng.permutation(count) + 1
    depths = rng.permutation(count).astype(np.float64)
    hues = _spread_hues(rng, count) if config.distinct_hues else [None] * count
    objects = [
        _sample_object(rng, config, int(ids[i]), float(depths[i]), world_size, hues[i]) for i in range(count)
    ]
    return Scene(config=config, world=world, camera=camera, objects=objects)


def _inside(obj: SceneObject, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Shape test in object coordinates (unit = radius)."""
    if obj.shape == "disc":
        return u * u + v * v <= 1.0
    if obj.shape == "box":
        return (np.abs(u) <= obj.shape_params[0]) & (np.abs(v) <= obj.shape_params[1])
    if obj.shape == "triangle":
        root3 = math.sqrt(3.0)
        return (v >= -0.5) & (root3 * u + v <= 1.0) & (-root3 * u + v <= 1.0)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if obj.shape == "star":
        phase = np.mod(theta * 5.0 / (2 * math.pi) + 0.25, 1.0)
        return rho <= 0.45 + 0.55 * np.abs(2.0 * phase - 1.0)
    amplitudes, phases = obj.shape_params[:3], obj.shape_params[3:]
    boundary = 0.75 + sum(a * np.cos(k * theta + p) for k, a, p in zip((2, 3, 4), amplitudes, phases))
    return rho <= boundary


def _texture_weight(obj: SceneObject, u: np.ndarray, v: np.ndarray) -> np.ndarray | None:
    """Mixing weight (h, w) between the object's two colours, or None for a flat object."""
    if obj.texture is None:
        return None
    if obj.texture == "stripes":
        along = u * math.cos(obj.texture_angle) + v * math.sin(obj.texture_angle)
        return (np.sin(obj.texture_freq * along) > 0).astype(np.float32)
    return (np.sin(obj.texture_freq * u) * np.sin(obj.texture_freq * v) > 0).astype(np.float32)


def render_scene(scene: Scene, return_amodal: bool = False) -> tuple[np.ndarray, ...]:
    """Rasterise a scene.

    Returns `video` uint8 (T, H, W, 3) and `segmentations` uint8 (T, H, W, 1) (0 = background, else the
    instance id of the nearest object covering the pixel centre); with `return_amodal`, also bool
    (T, n, H, W) full (unoccluded) object masks, channel k for instance id k + 1.
    """
    config = scene.config
    frames, size = config.frames, config.size
    canvas = np.empty((frames, size, size, 3), dtype=np.float32)
    segmentations = np.zeros((frames, size, size, 1), dtype=np.uint8)
    amodal = np.zeros((frames, len(scene.objects), size, size), dtype=bool) if return_amodal else None
    far_to_near = sorted(scene.objects, key=lambda o: -o.depth)
    pixel = np.arange(size, dtype=np.float32) + 0.5
    for t in range(frames):
        cx, cy = scene.camera[t]
        frame = canvas[t]
        frame[...] = scene.world[cy : cy + size, cx : cx + size]
        ids = segmentations[t, :, :, 0]
        for obj in far_to_near:
            x, y = obj.centre[t] - scene.camera[t]
            radius = obj.radius * obj.scale[t]
            reach = radius * obj.extent
            x0, x1 = max(0, math.floor(x - reach)), min(size, math.ceil(x + reach) + 1)
            y0, y1 = max(0, math.floor(y - reach)), min(size, math.ceil(y + reach) + 1)
            if x0 >= x1 or y0 >= y1:
                continue
            cos, sin = math.cos(obj.angle[t]) / radius, math.sin(obj.angle[t]) / radius
            dx, dy = pixel[x0:x1] - np.float32(x), pixel[y0:y1, None] - np.float32(y)
            u = cos * dx + sin * dy
            v = cos * dy - sin * dx
            mask = _inside(obj, u, v)
            weight = _texture_weight(obj, u, v)
            if weight is None:
                colour = obj.colours[0]
            else:
                weight = weight[..., None]
                colour = obj.colours[0] + weight * (obj.colours[1] - obj.colours[0])
            np.copyto(frame[y0:y1, x0:x1], colour, where=mask[..., None])
            np.copyto(ids[y0:y1, x0:x1], obj.instance_id, where=mask, casting="unsafe")
            if amodal is not None:
                amodal[t, obj.instance_id - 1, y0:y1, x0:x1] = mask
    canvas *= 255.0
    canvas += 0.5
    video = np.clip(canvas, 0.0, 255.0, out=canvas).astype(np.uint8)
    return (video, segmentations, amodal) if return_amodal else (video, segmentations)


def generate_video(config: SyntheticConfig, seed: int, split: str, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Video `index` of `split` (deterministic): `video` uint8 (T, H, W, 3), `segmentations` uint8 (T, H, W, 1)."""
    return render_scene(sample_scene(video_rng(seed, split, index), config))
