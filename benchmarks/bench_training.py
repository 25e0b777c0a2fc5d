"""Training / evaluation speed and memory, with and without the frozen-feature cache.

For one experiment config (model built exactly as `srl-train` builds it, with a randomly initialised
backbone of the same architecture: same compute) and one batch size, every phase runs in a fresh
subprocess so that its peak memory is its own:

- `train_video`  : training steps from video batches `(B, T, 3, H, W)` (backbone + model, backward, clip, Adam)
- `train_cached` : the same steps from cached features `(B, T, N, D_f)` (`forward_features`, no backbone;
  random float16-rounded values of that shape, so the backbone never runs in this process)
- `eval_video` / `eval_cached`: evaluation forward over whole videos (`--eval-frames` frames) -> eval masks
- `loader_cached`: clips/s delivered by `CachedFeatureDataModule` from a small cache written on the fly

Batches are synthetic and kept in memory (device-resident) for the step timings, so they time compute,
not I/O; `loader_cached` times the cache reading separately. Peak memory is the peak RSS of the phase's
process on CPU (with `rss_after_model_build_mib`, the RSS of the imports and weights before the timed work)
and `torch.cuda.max_memory_allocated` on GPU. Timings are medians over the timed steps / videos.

    python benchmarks/bench_training.py --experiment srl/movi_c --batch-size 2 --out results.json
    python benchmarks/bench_training.py --experiment srl/movi_c --batch-size 64 --device cuda --precision bf16
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

PHASES = ("train_video", "train_cached", "eval_video", "eval_cached", "loader_cached")
GRADIENT_CLIP = 0.05


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", default="srl/movi_c", help="experiment config, <method>/<dataset>")
    parser.add_argument("--batch-size", type=int, default=2, help="training clips per step")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast on CUDA")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (after warm-up)")
    parser.add_argument("--steps", type=int, default=3, help="timed training steps per path")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps / videos before timing")
    parser.add_argument("--global-step", type=int, default=25000, help="step at which loss windows are evaluated")
    parser.add_argument("--eval-videos", type=int, default=2, help="timed evaluation videos per path")
    parser.add_argument("--eval-frames", type=int, default=24, help="frames per evaluation video")
    parser.add_argument("--loader-batches", type=int, default=20, help="batches timed in loader_cached")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers in loader_cached")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated subset of " + ",".join(PHASES))
    parser.add_argument("--override", action="append", default=[], help="extra Hydra override (repeatable)")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON report here")
    parser.add_argument("--phase", choices=PHASES, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_phase(args: argparse.Namespace) -> dict[str, Any]:
    """Run one phase in this process and return its measurements."""
    from benchmarks.bench_setup import build_model, cached_inputs
    from benchmarks.measure import current_rss_mib, peak_memory_mib, timed_calls
    from benchmarks.speed import autocast, maybe_compile

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = build_model(args.experiment, args.override).to(device)
    backbone = model.backbone
    precision = None if args.precision == "fp32" else args.precision
    size = backbone.input_size
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    result: dict[str, Any] = {"phase": args.phase}
    if device.type == "cpu":
        result["rss_after_model_build_mib"] = current_rss_mib()

    if args.phase == "loader_cached":
        from benchmarks.bench_setup import cached_loader_throughput

        clips_per_s = cached_loader_throughput(model, args.experiment, args.batch_size, args.loader_batches,
                                               args.num_workers)
        result.update(clips_per_s=clips_per_s)
    elif args.phase.startswith("train"):
        cached = args.phase == "train_cached"
        inputs = (cached_inputs(backbone, args.batch_size, 4, device) if cached
                  else {"video": torch.randn(args.batch_size, 4, 3, size, size, device=device)})
        forward = maybe_compile(model.forward_features if cached else model, args.compile)
        optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        model.train()

        def step() -> None:
            with autocast(device, precision):
                outputs = forward(**inputs)
                losses = model.compute_losses(outputs, args.global_step)
            losses["total"].backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        timing = timed_calls({"step": step}, args.steps, args.warmup, device)["step"]
        seconds, cpu_seconds = timing["wall_s"], timing["cpu_s"]
        result.update(steps_per_s=1 / seconds, clips_per_s=args.batch_size / seconds, seconds_per_step=seconds,
                      cpu_seconds_per_step=cpu_seconds)
    else:
        cached = args.phase == "eval_cached"
        inputs = (cached_inputs(backbone, 1, args.eval_frames, device) if cached
                  else {"video": torch.randn(1, args.eval_frames, 3, size, size, device=device)})
        model.eval()

        @torch.inference_mode()
        def evaluate() -> None:
            with autocast(device, precision):
                outputs = model.forward_features(**inputs) if cached else model(inputs["video"])
                model.eval_masks(outputs)

        timing = timed_calls({"evaluate": evaluate}, args.eval_videos, args.warmup, device)["evaluate"]
        seconds, cpu_seconds = timing["wall_s"], timing["cpu_s"]
        result.update(videos_per_s=1 / seconds, seconds_per_video=seconds, cpu_seconds_per_video=cpu_seconds)
    result["peak_memory_mib"] = peak_memory_mib(device)
    return result


def _child(args: argparse.Namespace, phase: str) -> dict[str, Any]:
    """Run `phase` in a fresh interpreter (own peak memory) and parse its JSON line."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--phase", phase]
    for name, value in vars(args).items():
        if name in ("phase", "out", "phases") or value is None or value is False:
            continue
        flag = "--" + name.replace("_", "-")
        if value is True:
            argv.append(flag)
        elif isinstance(value, list):
            for item in value:
                argv += [flag, str(item)]
        else:
            argv += [flag, str(value)]
    completed = subprocess.run(argv, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if completed.returncode != 0:
        raise RuntimeError(f"phase {phase} failed:\n{completed.stderr[-4000:]}")
    return json.loads(completed.stdout.strip().splitlines()[-1])


def summarise(args: argparse.Namespace, phases: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The JSON report: settings, every phase, and the cached/uncached ratios."""
    report: dict[str, Any] = {
        "experiment": args.experiment,
        "batch_size": args.batch_size,
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu",
        "torch_threads": args.threads or torch.get_num_threads(),
        "precision": args.precision,
        "compile": args.compile,
        "global_step": args.global_step,
        "eval_frames": args.eval_frames,
        "cpu_count": os.cpu_count(),
        "phases": phases,
    }
    for kind, unit in (("train", "step"), ("eval", "video")):
        video, cached = phases.get(f"{kind}_video"), phases.get(f"{kind}_cached")
        if video is not None and cached is not None:
            report[f"{kind}_speedup_cached"] = video[f"seconds_per_{unit}"] / cached[f"seconds_per_{unit}"]
            report[f"{kind}_speedup_cached_cpu_time"] = (
                video[f"cpu_seconds_per_{unit}"] / cached[f"cpu_seconds_per_{unit}"]
            )
    return report


def table(report: dict[str, Any]) -> str:
    """A short plain-text table of the report."""
    rows = [f"{'phase':<14} {'steps/s':>9} {'clips/s':>9} {'videos/s':>9} {'CPU s':>9} {'peak MiB':>9}"]
    for name, phase in report["phases"].items():
        cpu = phase.get("cpu_seconds_per_step", phase.get("cpu_seconds_per_video"))
        cells = [phase.get("steps_per_s"), phase.get("clips_per_s"), phase.get("videos_per_s"), cpu,
                 phase.get("peak_memory_mib")]
        rows.append(f"{name:<14} " + " ".join(f"{c:>9.3f}" if c is not None else f"{'-':>9}" for c in cells))
    for kind in ("train", "eval"):
        if f"{kind}_speedup_cached" in report:
            rows.append(f"{kind} speed-up from the cache: {report[f'{kind}_speedup_cached']:.2f}x wall time, "
                        f"{report[f'{kind}_speedup_cached_cpu_time']:.2f}x CPU time")
    if "load_average_before" in report:
        rows.append(f"load average (1/5/15 min) before {report['load_average_before']}, "
                    f"after {report['load_average_after']}; {report['wall_seconds']} s")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.phase is not None:
        print(json.dumps(run_phase(args)))
        return
    phases = {}
    load_before = os.getloadavg()
    started = time.perf_counter()
    for phase in [name.strip() for name in args.phases.split(",") if name.strip()]:
        if phase not in PHASES:
            raise SystemExit(f"unknown phase {phase!r}; choose from {', '.join(PHASES)}")
        print(f"running {phase} ...", file=sys.stderr, flush=True)
        phases[phase] = _child(args, phase)
    report = summarise(args, phases)
    report.update(
        load_average_before=[round(value, 2) for value in load_before],
        load_average_after=[round(value, 2) for value in os.getloadavg()],
        wall_seconds=round(time.perf_counter() - started, 1),
    )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2))
    print(table(report))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
