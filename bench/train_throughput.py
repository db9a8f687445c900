"""Training throughput (images/second) of one optimisation step per model on this machine, and the
epochs each model can train in one sitting.

    python bench/train_throughput.py [--models cnn3 densenet201_fer] [--batch-size 128] [--steps 10]
                                     [--budget-hours 2.3] [--teacher resnet10_fer] [--compare]
    python bench/train_throughput.py --compile [--threads 2] [--interop-threads 1] [--models resnet10_fer]

For each model: the trainer's own path (batch augmentation, channels_last, the precision the trainer
picks here: bf16 only where the CPU computes it natively), the same with a distillation teacher's
forward pass added, and the epochs of the 28,709 FER2013 Training faces that fit in --budget-hours
at that speed. --compare adds a naive loop (per-image PIL augmentation, fp32 NCHW) and each layout
and precision. --compile adds the same step with the model under torch.compile (inductor, CPU; its
compilation is timed apart), --threads and --interop-threads set torch's intra- and inter-op threads for the
whole run (the interop count can only be set once per process: one run per setting). Prints one JSON
object. Run it on an idle machine: a training job beside it halves every figure.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch
import torch.nn.functional as F

from fer_models.datasets.augment import AugmentConfig, augment_batch
from fer_models.nets.models import create_model, list_models
from fer_models.nets.precision import autocast_for, resolve_precision


def timed_steps(name, batch, steps, make_batch, precision="fp32", fmt=torch.contiguous_format, teacher=None,
                compiled=False, timings=None):
    """Images per second of SGD steps on `name`, each on the batch that make_batch() returns; with a
    teacher model, its forward pass and the distillation term are part of each step, as in the trainer.
    compiled: the model under torch.compile; the first steps' time (compilation) goes into timings."""
    torch.manual_seed(0)
    model = create_model(name).to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    if compiled:
        model = torch.compile(model)
    y = torch.randint(0, 7, (batch,))

    def step():
        x = make_batch().contiguous(memory_format=fmt)
        with autocast_for(torch.device("cpu"), precision):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        if teacher is not None:
            with torch.no_grad():
                soft = (teacher(x).float() / 4).softmax(1)
            loss = loss + F.kl_div((logits.float() / 4).log_softmax(1), soft, reduction="batchmean")
        opt.zero_grad()
        loss.backward()
        opt.step()

    t = time.perf_counter()
    for _ in range(2):
        step()
    if timings is not None:
        timings["warm_up_seconds"] = round(time.perf_counter() - t, 1)
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return round(batch * steps / (time.perf_counter() - t), 1)


def trainer_batches(batch):
    """The trainer's path: uint8 batch -> float -> augment_batch, all tensor ops."""
    x_all = torch.randint(0, 256, (batch, 1, 48, 48), dtype=torch.uint8)
    gen = torch.Generator().manual_seed(0)
    return lambda: augment_batch(x_all.float() / 255 - 0.5, AugmentConfig(), gen)


def naive_batches(batch):
    """The seed's kind of loop: per-image PIL transforms (torchvision), stacked."""
    import numpy as np
    from PIL import Image
    from torchvision import transforms as T

    faces = [Image.fromarray(a) for a in np.random.default_rng(0).integers(0, 256, (batch, 48, 48), np.uint8)]
    tf = T.Compose([T.RandomCrop(48, padding=4), T.RandomHorizontalFlip(), T.RandomRotation(10), T.ToTensor(),
                    T.Normalize([0.5], [0.25])])
    return lambda: torch.stack([tf(f) for f in faces])


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--models", nargs="*", default=list_models())
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--budget-hours", type=float, default=2.3, help="one sitting's wall time")
    p.add_argument("--train-faces", type=int, default=28709, help="faces per epoch (FER2013 Training)")
    p.add_argument("--teacher", default="resnet10_fer", help="the distillation teacher's architecture")
    p.add_argument("--compare", action="store_true", help="also the naive loop and every layout/precision")
    p.add_argument("--compile", action="store_true", help="also the trainer's step under torch.compile")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch.set_num_threads")
    p.add_argument("--interop-threads", type=int, help="torch.set_num_interop_threads (default: torch's)")
    args = p.parse_args()
    if args.interop_threads:
        torch.set_num_interop_threads(args.interop_threads)
    torch.set_num_threads(args.threads)
    precision = resolve_precision("auto", torch.device("cpu"))
    teacher = create_model(args.teacher).to(memory_format=torch.channels_last).eval()
    result = {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads(),
              "batch_size": args.batch_size, "cpu_capability":
              torch.backends.cpu.get_cpu_capability(), "trainer_precision": precision,
              "budget_hours": args.budget_hours, "teacher": args.teacher, "models": {}}
    for name in args.models:
        b, n, cl = args.batch_size, args.steps, torch.channels_last
        trainer = timed_steps(name, b, n, trainer_batches(b), precision, cl)
        taught = timed_steps(name, b, n, trainer_batches(b), precision, cl, teacher=teacher)
        seconds = args.budget_hours * 3600
        row = {"images_per_second": trainer, "with_teacher_images_per_second": taught,
               "epochs_in_budget": int(seconds * trainer // args.train_faces),
               "epochs_in_budget_with_teacher": int(seconds * taught // args.train_faces)}
        if args.compile:
            timings = {}
            row["compiled_images_per_second"] = timed_steps(name, b, n, trainer_batches(b), precision, cl,
                                                            compiled=True, timings=timings)
            row["compile_seconds"] = timings["warm_up_seconds"]
        if args.compare:
            row.update(naive_pil_fp32=timed_steps(name, b, n, naive_batches(b)),
                       fp32_nchw=timed_steps(name, b, n, trainer_batches(b)),
                       fp32_channels_last=timed_steps(name, b, n, trainer_batches(b), fmt=cl),
                       bf16_channels_last=timed_steps(name, b, n, trainer_batches(b), "bf16", cl))
        result["models"][name] = row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
