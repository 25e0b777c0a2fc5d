"""Two diagnostics of mask quality on the embedded synthetic data (docs/SYNTHETIC.md).

`ceiling`: the best video FG-ARI / mBO that masks on a G x G patch grid can reach. Every patch gets the
fraction of its area covered by each ground-truth label (background included); these soft masks go through the
evaluation's own bilinear upsampling and argmax (`hard_masks_from_soft`) and are scored like a model's masks.

`background-share`: for a trained run, how its decoder masks treat the background on the validation videos:
the share of object pixels that land in the slot holding most of a video's background pixels, and the mean
number of slots holding more than 10 % of a video's background (1: one background slot; more: the background
is divided among the object slots).

`separation`: for a trained run, per number of objects in a validation video, how many videos have every object
in a slot of its own, and how many have a split object (its main slot holds under 60 % of its pixels), two
objects sharing their main slot (merged), or an object whose main slot is the background's. This is what the
demo's mask image shows for one video, counted over all of them; `--masks grouping` counts the slot-attention
masks instead of the decoder masks that the evaluation scores.

    python benchmarks/synthetic_masks.py ceiling --grid 8
    python benchmarks/synthetic_masks.py ceiling --grid 16 --option "object_radius=[0.2,0.28]"
    python benchmarks/synthetic_masks.py background-share srl_demo/srl
    python benchmarks/synthetic_masks.py separation srl_demo/srl
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from typing import Any, Iterator, Sequence

import torch
import torch.nn.functional as F

from srl_plugin.data.render import SyntheticConfig, generate_video
from srl_plugin.metrics.masks import hard_masks_from_soft, slot_ids_from_soft
from srl_plugin.metrics.segmentation import VideoARI, VideoMBO

BACKGROUND_SHARE = 0.1
SPLIT_SHARE = 0.6


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    ceiling = commands.add_parser("ceiling", help="best scores of masks on a patch grid")
    ceiling.add_argument("--grid", type=int, default=8, help="patches per side (default 8, the demo's)")
    ceiling.add_argument("--preset", default="easy", help="synthetic preset (default easy, the demo's)")
    ceiling.add_argument(
        "--option", action="append", default=[], metavar="KEY=JSON",
        help="a generation option over the demo's (repeatable), e.g. object_radius=[0.2,0.28]",
    )
    ceiling.add_argument("--videos", type=int, default=32, help="validation videos scored (default 32)")
    share = commands.add_parser("background-share", help="how a trained run's masks treat the background")
    share.add_argument("run", help="run directory or .ckpt of a synthetic experiment")
    separation = commands.add_parser("separation", help="videos whose objects each have a slot of their own")
    separation.add_argument("run", help="run directory or .ckpt of a synthetic experiment")
    separation.add_argument(
        "--masks", choices=("decoder", "grouping"), default="decoder",
        help="decoder masks (scored by the evaluation; default) or slot-attention masks",
    )
    return parser.parse_args(argv)


def demo_options(overrides: Sequence[str]) -> dict[str, Any]:
    """The demo dataset's generation options (configs/dataset/synthetic.yaml) with ``KEY=JSON`` overrides."""
    from srl_plugin.runtime import TRAIN_CONFIG, compose_config

    from omegaconf import OmegaConf

    synthetic = OmegaConf.to_container(compose_config(TRAIN_CONFIG, ["experiment=srl/synthetic"]).data.synthetic)
    options = {key: synthetic[key] for key in ("num_objects", "object_radius", "frames", "size")}
    for item in overrides:
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"--option must look like KEY=JSON, got {item!r}")
        options[key] = json.loads(value)
    return options


def patch_ceiling(config: SyntheticConfig, grid: int, videos: int) -> dict[str, float]:
    """Video FG-ARI and mBO of area-fraction masks on a ``grid`` x ``grid`` patch grid, over ``videos``
    validation videos of ``config`` (seed 0)."""
    ari, mbo = VideoARI(), VideoMBO()
    labels = config.num_objects[1] + 1
    for index in range(videos):
        _, segmentations = generate_video(config, 0, "validation", index)
        ids = torch.from_numpy(segmentations[..., 0]).long()  # (T, H, W)
        truth = F.one_hot(ids, labels).permute(0, 3, 1, 2).float()  # (T, C, H, W)
        soft = F.adaptive_avg_pool2d(truth, grid).flatten(2)[None]  # (1, T, C, grid^2)
        predicted = hard_masks_from_soft(soft, ids.shape[-1])
        ari.update(predicted, truth[None])
        mbo.update(predicted, truth[None])
    return {"video_fg_ari": float(ari.compute()), "video_mbo": float(mbo.compute())}


def validation_slot_ids(run: str, masks: str = "decoder") -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """For each validation video of a trained synthetic run: its predicted slot ids (T, H, W) from the
    ``masks`` ("decoder": the masks the evaluation scores; "grouping": the slot-attention masks), its
    ground-truth labels (T, H, W) with 0 the background, and the number of slots."""
    from srl_plugin.runtime import checkpoint_path, load_model
    from srl_plugin.runtime.streaming import model_inputs, run_model, video_eval_masks
    from srl_plugin.training.evaluate import eval_config
    from srl_plugin.training.runner import build_datamodule

    model, stored = load_model(checkpoint_path(run))
    config = eval_config(stored, [])
    datamodule = build_datamodule(config)
    datamodule.setup("validate")
    model.eval()
    for batch in datamodule.val_dataloader():
        with torch.no_grad():
            inputs = model_inputs(batch)
            soft = video_eval_masks(model, inputs) if masks == "decoder" else run_model(model, inputs)["grouping_masks"]
        truth = batch["masks"].argmax(2)  # (B, T, H, W), 0 = background
        slots = slot_ids_from_soft(soft, tuple(truth.shape[-2:]))  # soft: (B, T, K, N)
        for predicted, labels in zip(slots, truth):
            yield predicted, labels, soft.shape[2]


def background_share(run: str) -> dict[str, float]:
    """Share of object pixels in each video's main background slot, and slots per video holding more than
    ``BACKGROUND_SHARE`` of its background, for the validation videos of a trained run."""
    in_background_slot = objects = background_slots = videos = 0
    for predicted, labels, num_slots in validation_slot_ids(run):
        counts = torch.bincount(predicted[labels == 0], minlength=num_slots).float()
        foreground = predicted[labels > 0]
        in_background_slot += int((foreground == counts.argmax()).sum())
        objects += foreground.numel()
        background_slots += int((counts / counts.sum().clamp(min=1) > BACKGROUND_SHARE).sum())
        videos += 1
    return {
        "object_pixels_in_background_slot": in_background_slot / max(objects, 1),
        "slots_holding_background": background_slots / max(videos, 1),
        "videos": videos,
    }


def video_errors(predicted: torch.Tensor, labels: torch.Tensor, num_slots: int) -> dict[str, bool]:
    """How one video's slots fail its objects. ``predicted``: (T, H, W) slot ids; ``labels``: (T, H, W)
    ground-truth ids, 0 the background. An object's main slot is the slot holding most of its pixels over the
    video. Flags: ``split`` (some main slot holds under ``SPLIT_SHARE`` of its object), ``merged`` (two objects
    share a main slot), ``in_background`` (some object's main slot is the background's); ``separated`` when
    none of these happens."""
    background_slot = int(torch.bincount(predicted[labels == 0], minlength=num_slots).argmax())
    main_slots, split = [], False
    for label in labels.unique().tolist():
        if label == 0:
            continue
        counts = torch.bincount(predicted[labels == label], minlength=num_slots).float()
        main_slots.append(int(counts.argmax()))
        split |= bool(counts.max() < SPLIT_SHARE * counts.sum())
    merged = len(set(main_slots)) < len(main_slots)
    in_background = background_slot in main_slots
    return {"split": split, "merged": merged, "in_background": in_background,
            "separated": not (split or merged or in_background)}


def separation(run: str, masks: str) -> dict[str, Any]:
    """Counts of :func:`video_errors` flags over the validation videos of a trained run, per number of objects
    in a video, and over all videos."""
    per_count: dict[int, Counter] = {}
    for predicted, labels, num_slots in validation_slot_ids(run, masks):
        objects = int((labels.unique() > 0).sum())
        tally = per_count.setdefault(objects, Counter())
        tally["videos"] += 1
        tally.update(flag for flag, raised in video_errors(predicted, labels, num_slots).items() if raised)
    total = sum(per_count.values(), Counter())
    keys = ("videos", "separated", "split", "merged", "in_background")
    return {"masks": masks, "all": {key: total[key] for key in keys},
            **{f"{count}_objects": {key: tally[key] for key in keys} for count, tally in sorted(per_count.items())}}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.command == "ceiling":
        options = demo_options(args.option)
        result = {"grid": args.grid, "preset": args.preset, "options": options,
                  **patch_ceiling(SyntheticConfig.from_preset(args.preset, **options), args.grid, args.videos)}
    elif args.command == "background-share":
        result = {"run": args.run, **background_share(args.run)}
    else:
        result = {"run": args.run, **separation(args.run, args.masks)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
