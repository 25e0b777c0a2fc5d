"""Side by side with the official SRL code: training steps, evaluation and peak memory (SRL, MOVi-C).

The official repository (a clone of hynnsk/SRL, given by path; it never enters this repository) builds its
model from its own `configs/srl/movi_c.yaml` with a randomly initialised DINOv2 ViT-S/14 (same compute, no
weights needed). Our model is built from the official model's state dict with
`srl_plugin.interop.model_from_official_state_dict`, so both hold the same weights and see the same inputs;
the report records how far their losses and masks differ before anything is timed.

Timing runs both in one process, interleaved (official, ours, official, ours, ...), and quotes the median CPU
time of this process per call on CPU (steadier than wall time on a shared machine; with one thread it is the
work done) and the median wall time on GPU (synchronised). Phases:

- `train`: one optimiser step on a batch of 4-frame clips (forward, losses at `--global-step`, backward,
  gradient clipping at 0.05, Adam), for every `--batch-sizes` entry.
- `train_cached` (ours only, beside the official video step): the same step from float16-rounded backbone
  features (`forward_features`), as `features=cached` trains.
- `eval`: one `--eval-frames`-frame video through the model in eval mode, to hard masks at input size (the
  official `forward` + `aux_forward`; our forward + `hard_masks_from_soft`).

Peak memory: each implementation runs `--memory-steps` training steps at the first batch size in a fresh
subprocess and reports its peak RSS (peak CUDA allocation on GPU).

`--precision` sets our autocast (`bf16` on CPU or GPU, `fp16` on GPU); `--official-precision` the official
one (`fp32` by default; `fp16` is the official recipe on GPU).

    python benchmarks/compare_official.py --official /path/to/SRL --batch-sizes 1 2 --threads 1 --out fp32.json
    python benchmarks/compare_official.py --official /path/to/SRL --precision bf16 --threads 1 --out bf16.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` importable when run as a script
from benchmarks.measure import peak_memory_mib, timed_calls  # noqa: E402
from benchmarks.speed import autocast  # noqa: E402

GRADIENT_CLIP = 0.05
IMPLEMENTATIONS = ("official", "ours", "ours_cached")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--official", type=Path, required=True, help="clone of the official SRL repository")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2], help="training clips per step")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="our autocast")
    parser.add_argument("--official-precision", choices=("fp32", "bf16", "fp16"), default="fp32")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per implementation")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps / videos before timing")
    parser.add_argument("--eval-videos", type=int, default=2, help="timed evaluation videos per implementation")
    parser.add_argument("--eval-frames", type=int, default=24, help="frames per evaluation video")
    parser.add_argument("--global-step", type=int, default=30000, help="step at which loss windows are evaluated")
    parser.add_argument("--memory-steps", type=int, default=2, help="training steps of each memory subprocess")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--phases", default="train,train_cached,eval,memory", help="comma-separated phases")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--memory-child", choices=IMPLEMENTATIONS, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("precision", "official_precision"):  # benchmarks.speed.autocast: None means no autocast
        setattr(args, name, None if getattr(args, name) == "fp32" else getattr(args, name))
    return args


def build_official(repo: Path, device: torch.device) -> nn.Module:
    """The official SRL MOVi-C model (random-init backbone), from the official code's own config."""
    sys.path.insert(0, str(repo.resolve()))
    from srl import configuration, models  # the official package, importable from the clone

    config = configuration.load_config(
        repo / "configs" / "srl" / "movi_c.yaml", ["model.encoder.backbone.pretrained=false"]
    )
    torch.manual_seed(0)
    return models.build(config.model, config.optimizer).to(device)


def build_ours(official: nn.Module, device: torch.device) -> nn.Module:
    """Our SRL model holding the official model's weights."""
    from srl_plugin.interop import model_from_official_state_dict

    return model_from_official_state_dict(official.state_dict(), preset="movi_c", method="srl").to(device)


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [parameter for parameter in model.parameters() if parameter.requires_grad]


def training_step(
    model: nn.Module, loss_of: Callable[[], torch.Tensor], optimizer: torch.optim.Optimizer
) -> Callable[[], float]:
    """One optimiser step as the training loops run it; returns the loss."""

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_of()
        loss.backward()
        nn.utils.clip_grad_norm_(trainable(model), GRADIENT_CLIP)
        optimizer.step()
        return float(loss.detach())

    return step


class Bench:
    """Both models, their inputs and the step / evaluation closures for one run."""

    def __init__(self, args: argparse.Namespace, device: torch.device) -> None:
        self.args = args
        self.device = device
        self.official = build_official(args.official, device)
        self.ours = build_ours(self.official, device)
        size = self.ours.input_size
        generator = torch.Generator().manual_seed(0)
        self.videos = {
            batch: torch.randn(batch, 4, 3, size, size, generator=generator).to(device) for batch in args.batch_sizes
        }
        self.eval_video = torch.randn(1, args.eval_frames, 3, size, size, generator=generator).to(device)

    def official_loss(self, video: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.args.official_precision):
            outputs = self.official({"video": video})
            total, _ = self.official.compute_loss(outputs, self.args.global_step)
        return total

    def our_loss(self, video: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.args.precision):
            return self.ours.compute_losses(self.ours(video), self.args.global_step)["total"]

    def our_cached_loss(self, features: torch.Tensor) -> torch.Tensor:
        with autocast(self.device, self.args.precision):
            return self.ours.compute_losses(self.ours.forward_features(features), self.args.global_step)["total"]

    def cached_features(self, video: torch.Tensor) -> torch.Tensor:
        """What the feature cache stores for `video`: the frozen backbone's tokens, float16-rounded."""
        with torch.no_grad():
            return self.ours.backbone(video)["backbone_features"].half().float()

    @torch.no_grad()
    def official_eval(self) -> None:
        inputs = {"video": self.eval_video}
        with autocast(self.device, self.args.official_precision):
            self.official.aux_forward(inputs, self.official(inputs))

    @torch.no_grad()
    def our_eval(self) -> None:
        from srl_plugin.metrics import hard_masks_from_soft

        with autocast(self.device, self.args.precision):
            outputs = self.ours(self.eval_video)
        hard_masks_from_soft(self.ours.eval_masks(outputs).float(), self.ours.input_size)

    def agreement(self) -> dict[str, float]:
        """Loss difference at one training batch (fp32 loss of each as configured) and eval-mask difference."""
        video = self.videos[self.args.batch_sizes[0]]
        with torch.no_grad():
            official, ours = float(self.official_loss(video)), float(self.our_loss(video))
            self.official.eval(), self.ours.eval()
            official_masks = self.official({"video": video})["decoder"]["masks"]
            our_masks = self.ours.eval_masks(self.ours(video))
            self.official.train(), self.ours.train()
        return {
            "official_loss": official,
            "our_loss": ours,
            "loss_abs_diff": abs(official - ours),
            "decoder_masks_max_abs_diff": float((official_masks.float() - our_masks.float()).abs().max()),
        }


def timing_phases(args: argparse.Namespace, device: torch.device, phases: set[str]) -> dict[str, Any]:
    bench = Bench(args, device)
    report: dict[str, Any] = {"agreement": bench.agreement(), "timings": {}}
    official_optimizer = torch.optim.Adam(trainable(bench.official), lr=1e-4)
    our_optimizer = torch.optim.Adam(trainable(bench.ours), lr=1e-4)
    for batch, video in bench.videos.items():
        if not phases & {"train", "train_cached"}:
            break
        calls = {"official": training_step(bench.official, lambda: bench.official_loss(video), official_optimizer)}
        if "train" in phases:
            calls["ours"] = training_step(bench.ours, lambda: bench.our_loss(video), our_optimizer)
        if "train_cached" in phases:
            features = bench.cached_features(video)
            calls["ours_cached"] = training_step(bench.ours, lambda: bench.our_cached_loss(features), our_optimizer)
        print(f"train, batch {batch}: {', '.join(calls)} interleaved", flush=True)
        report["timings"][f"train_batch{batch}"] = timed_calls(calls, args.steps, args.warmup, device)
    if "eval" in phases:
        bench.official.eval(), bench.ours.eval()
        print(f"eval: one {args.eval_frames}-frame video, official and ours interleaved", flush=True)
        report["timings"]["eval"] = timed_calls(
            {"official": bench.official_eval, "ours": bench.our_eval}, args.eval_videos, args.warmup, device
        )
    return report


def memory_child(args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Peak memory of `--memory-steps` training steps of one implementation, alone in this process.

    Our model is built from our own config (random backbone: no official code in the process); for
    `ours_cached` the backbone is dropped and the features are random float16-rounded values of its output shape.
    """
    video = torch.randn(args.batch_sizes[0], 4, 3, 336, 336, device=device)
    if args.memory_child == "official":
        model = build_official(args.official, device)

        def loss_of() -> torch.Tensor:
            with autocast(device, args.official_precision):
                return model.compute_loss(model({"video": video}), args.global_step)[0]

    else:
        from benchmarks.bench_setup import build_model, cached_inputs

        model = build_model("srl/movi_c", []).to(device)
        inputs = {"video": video}
        if args.memory_child == "ours_cached":
            inputs = cached_inputs(model.backbone, args.batch_sizes[0], 4, device)
            model.backbone = None
            del video

        def loss_of() -> torch.Tensor:
            with autocast(device, args.precision):
                outputs = model(**inputs) if "video" in inputs else model.forward_features(**inputs)
                return model.compute_losses(outputs, args.global_step)["total"]

    optimizer = torch.optim.Adam(trainable(model), lr=1e-4)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    step = training_step(model, loss_of, optimizer)
    for _ in range(args.memory_steps):
        step()
    return {"peak_mib": peak_memory_mib(device)}


def memory_phase(argv: list[str]) -> dict[str, Any]:
    """Runs one memory subprocess per implementation; their peaks and the ratios to the official one."""
    peaks = {}
    for implementation in IMPLEMENTATIONS:
        print(f"memory: {implementation} in a fresh process", flush=True)
        completed = subprocess.run(
            [sys.executable, __file__, *argv, "--memory-child", implementation],
            check=True, capture_output=True, text=True, env=os.environ.copy(),
        )
        peaks[implementation] = json.loads(completed.stdout.strip().splitlines()[-1])["peak_mib"]
    return {
        "peak_mib": peaks,
        "ratio_to_official": {name: peak / peaks["official"] for name, peak in peaks.items()},
    }


def speedups(timings: dict[str, dict[str, dict[str, float]]], measure: str) -> dict[str, float]:
    """Official seconds / ours (`measure`: `cpu_s` or `wall_s`) for every timed phase and implementation."""
    return {
        f"{phase}/{name}": calls["official"][measure] / timing[measure]
        for phase, calls in timings.items()
        for name, timing in calls.items()
        if name != "official"
    }


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        print(json.dumps(memory_child(args, device)))
        return
    phases = set(args.phases.split(","))
    start = time.perf_counter()
    report: dict[str, Any] = {
        "config": {key: str(value) for key, value in vars(args).items() if key != "memory_child"},
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average_start": os.getloadavg(),
    }
    report.update(timing_phases(args, device, phases))
    measure = "cpu_s" if device.type == "cpu" else "wall_s"  # GPU work is not CPU time
    report[f"speedup_{measure}"] = speedups(report["timings"], measure)
    if "memory" in phases:
        report["memory"] = memory_phase([item for item in argv if item != "--memory-child"])
    report["load_average_end"] = os.getloadavg()
    report["wall_s"] = time.perf_counter() - start
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
