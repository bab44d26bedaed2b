"""Runs an anchor's own ``training_loop`` on the CPU for a parity case and records it (run by ``run.py`` in a
subprocess, with the anchor's patched copy as working directory; imports nothing of fakeclr). BigGAN's reference
has no loop function to call; :func:`run_biggan` drives its training function as its ``train.py`` does.

    python anchor_side.py ANCHOR_DIR SPEC.json INPUTS.pt OUT.pt [--time WARMUP]

What is changed at import, not in the anchor's files (``anchors.py`` makes the one line edit, the device):
CUDA events, streams and memory statistics become no-ops, ``Tensor.pin_memory`` and ``Tensor.cuda`` return the
tensor itself, the heads' ``concat_all_gather`` is the identity (one process, no process group), the infinite
sampler is not built, and the data loader is replaced by :class:`Feed`, which hands out the case's real batches and
reseeds torch and numpy at the top of every iteration. The loop itself, its loss, networks, augmentation, heads
and optimizers run as they are.

Recording reads the loop's local variables (``G``, ``D``, ``phase`` ...) from its frame: after every phase's
optimizer step (a global optimizer hook) and at the start of every iteration (the feed). At the first fetch the
loop's networks, heads and queues are overwritten with the case's initial state (fakeclr's seeded weights).
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import torch

TORCH_DIR = os.path.dirname(torch.__file__)
LOSS_NAMES = {"Loss/D_cl": "Loss/cl/real", "Loss/G_cl": "Loss/cl/fake", "Loss/G_cl_on_g": "Loss/cl/fake_on_G"}


class Finished(Exception):
    """Raised by the feed once the case's iterations are done."""


class _NoEvent:
    def __init__(self, *args, **kwargs):
        pass

    def record(self, *args, **kwargs):
        pass

    def synchronize(self):
        pass

    def elapsed_time(self, other):
        return 0.0


def patch_cuda_calls() -> None:
    torch.cuda.Event = _NoEvent
    torch.cuda.current_stream = lambda *a, **k: None
    torch.cuda.max_memory_allocated = lambda *a, **k: 0
    torch.cuda.reset_peak_memory_stats = lambda *a, **k: None
    torch.Tensor.pin_memory = lambda self, *a, **k: self
    torch.Tensor.cuda = lambda self, *a, **k: self


def seed_iteration(base: int, k: int) -> None:
    torch.manual_seed(base + k)
    np.random.seed(base + k)


class Recorder:
    """Per-phase and per-iteration snapshots of everything the comparison looks at, as plain tensors."""

    def __init__(self, c_dim: int):
        self.records: list[dict] = []
        self.gen_c: list[torch.Tensor] = []
        self.reports: dict[str, list[torch.Tensor]] = {}
        self.enqueued = {"fake": 0, "real": 0}
        self.c_dim = c_dim

    def report(self, name, value):
        if isinstance(value, torch.Tensor):
            name = LOSS_NAMES.get(name, name)
            self.reports.setdefault(name, []).append(value.detach().double().flatten().clone())

    def snapshot(self, f: dict) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        names: dict[int, str] = {}
        for prefix in ("G", "D", "G_ema", "D_ema"):
            if f.get(prefix) is not None:
                for k, v in f[prefix].state_dict().items():
                    out[f"{prefix}.{k}"] = v.detach().clone()
                if prefix in ("G", "D"):
                    names.update({id(p): f"{prefix}.{k}" for k, p in f[prefix].named_parameters()})
        for kind, head in (("fake", f.get("GHead")), ("real", f.get("DHead"))):
            if head is None:
                continue
            for k, v in head.mlp.state_dict().items():
                out[f"{kind}_head.mlp.{k}"] = v.detach().clone()
            for k, v in head.momentum_mlp.state_dict().items():
                out[f"{kind}_head_ema.mlp.{k}"] = v.detach().clone()
            names.update({id(p): f"{kind}_head.mlp.{k}" for k, p in head.mlp.named_parameters()})
            out[f"{kind}_queue.keys"] = head.queue.detach().t().clone()
            if hasattr(head, "queue_label"):         # released FakeCLR: the iteration of each key
                written = min(self.enqueued[kind], head.queue_size)
                iters = head.queue_label[0].detach().clone()
                iters[written:] = 0                  # never written: the released code's random start values
                out[f"{kind}_queue.iters"] = iters
        opts = [ph.opt for ph in f["phases"]] + [ph.opt for ph in (f.get("cl_phases") or {}).values()]
        for opt in {id(o): o for o in opts}.values():
            for p, st in opt.state.items():
                for key in ("exp_avg", "exp_avg_sq"):
                    out[f"adam.{key}.{names[id(p)]}"] = st[key].detach().clone()
                out[f"adam.step.{names[id(p)]}"] = torch.as_tensor(st["step"], dtype=torch.float64).clone()
        if f.get("augment_pipe") is not None:
            out["augment.p"] = f["augment_pipe"].p.detach().clone()
        out["pl_mean"] = f["loss"].pl_mean.detach().clone()
        return out

    def phase_done(self, f: dict) -> None:
        k, name = int(f["batch_idx"]), f["phase"].name
        if len(self.gen_c) == k:                     # the labels of this iteration's fakes, per phase
            self.gen_c.append(torch.stack([torch.cat(list(c)) for c in f["all_gen_c"]]).clone())
        if not self.reports:
            return                                   # a phase with nothing to do (Greg without path length)
        losses = {n: float(torch.cat(v).mean()) for n, v in self.reports.items()}
        self.reports = {}
        if name == "Dmain":
            batch = int(f["batch_size"])
            self.enqueued = {kind: n + batch for kind, n in self.enqueued.items()}
        self.records.append({"iteration": k, "phase": name, "losses": losses, "tensors": self.snapshot(f)})

    def iteration_done(self, k: int, f: dict) -> None:
        self.records.append({"iteration": k, "phase": "end", "losses": {}, "tensors": self.snapshot(f)})


def inject(f: dict, state: dict) -> None:
    """The case's initial state into the loop's modules (copied in place: the optimizers keep their tensors)."""
    with torch.no_grad():
        for name in ("G", "D", "G_ema", "D_ema"):
            if f.get(name) is not None:
                f[name].load_state_dict(state[name])
        for kind, head in (("fake", f.get("GHead")), ("real", f.get("DHead"))):
            if head is None:
                continue
            strip = lambda sd: {k[len("mlp."):]: v for k, v in sd.items() if k.startswith("mlp.")}   # noqa: E731
            head.mlp.load_state_dict(strip(state[f"{kind}_head"]))
            head.momentum_mlp.load_state_dict(strip(state[f"{kind}_head_ema"]))
            head.queue.copy_(state[f"{kind}_queue.keys"].t())
            head.queue_ptr.zero_()


class Feed:
    """The loop's data iterator: the case's batches; reseeds at the top of every iteration; records and injects."""

    def __init__(self, inputs: dict, spec: dict, recorder: Recorder | None, timing: dict | None):
        self.inputs, self.spec, self.recorder, self.timing, self.k = inputs, spec, recorder, timing, 0
        c_dim = spec["c_dim"]
        labels = inputs["labels"].numpy()
        self.onehot = torch.zeros(len(labels), c_dim)
        if c_dim:
            self.onehot[torch.arange(len(labels)), torch.from_numpy(labels)] = 1

    def __iter__(self):
        return self

    def __next__(self):
        f = sys._getframe(1).f_locals                # the training loop's frame
        k = self.k
        if k == 0:
            inject(f, self.inputs["state"])
        elif self.recorder is not None:
            self.recorder.iteration_done(k - 1, f)
        if self.timing is not None and k == self.timing["warmup"]:
            self.timing["start"] = (time.perf_counter(), int(f["cur_nimg"]))
        if k == self.spec["iterations"]:
            if self.timing is not None:
                t0, n0 = self.timing["start"]
                self.timing["sec_per_kimg"] = (time.perf_counter() - t0) / (int(f["cur_nimg"]) - n0) * 1000
            raise Finished
        idx = torch.as_tensor(self.inputs["batches"][k])
        seed_iteration(self.inputs["seed_base"], k)
        self.k += 1
        return self.inputs["images"][idx], self.onehot[idx]


# ---------------------------------------------------------------------------------------------------- BigGAN
BIGGAN_DIR = "DiffAugment-biggan-cifar"


def stub_modules(names: list[str]) -> None:
    """Empty modules for imports the BigGAN code makes but the training function never uses (torchvision and tqdm
    for its data loaders, progress bars and image sheets; its ``datasets`` module, which needs h5py)."""
    import types

    def anything(attr, name):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return types.ModuleType(f"{name}.{attr}")
    import importlib.machinery
    for name in names:
        module = types.ModuleType(name)
        module.__spec__ = importlib.machinery.ModuleSpec(name, None)
        module.__getattr__ = lambda attr, name=name: anything(attr, name)   # any public attribute
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent in sys.modules:
            setattr(sys.modules[parent], child, module)


class BigGANRecorder:
    """After every optimizer step of the reference's training function (read from its frame: ``G``, ``D``, the
    losses) and after every iteration: the same names as fakeclr_side.snapshot."""

    def __init__(self):
        self.records: list[dict] = []

    def snapshot(self, G, D, G_ema) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for prefix, net in (("G", G), ("D", D), ("G_ema", G_ema)):
            out.update({f"{prefix}.{k}": v.detach().clone() for k, v in net.state_dict().items()})
        for prefix, net in (("G", G), ("D", D)):
            names = {id(p): f"{prefix}.{k}" for k, p in net.named_parameters()}
            for p, st in net.optim.state.items():
                for key in ("exp_avg", "exp_avg_sq"):
                    out[f"adam.{key}.{names[id(p)]}"] = st[key].detach().clone()
                out[f"adam.step.{names[id(p)]}"] = torch.as_tensor(st["step"], dtype=torch.float64).clone()
        return out

    def step_done(self, optimizer, f: dict, G_ema) -> None:
        G, D = f["G"], f["D"]
        k = int(f["state_dict"]["itr"])
        if optimizer is D.optim:
            real = f["D_real"].detach().double()
            losses = {"Loss/D/loss": float(f["D_loss_real"]) + float(f["D_loss_fake"]),
                      "Loss/scores/real": float(real.mean()), "Loss/signs/real": float(real.sign().mean())}
            phase = "Dmain"
        else:
            losses = {"Loss/G/loss": float(f["G_loss"]), "Loss/scores/fake": float(f["D_fake"].double().mean())}
            phase = "Gmain"
        self.records.append({"iteration": k, "phase": phase, "losses": losses,
                             "tensors": self.snapshot(G, D, G_ema)})


def run_biggan(anchor_dir: str, spec: dict, inputs: dict, out_path: str) -> None:
    """DiffAugment-BigGAN's own training function (``train_fns.GAN_training_function``) with its networks, G_D,
    EMA, latent samplers and optimizers, built and driven as its ``train.py`` ``run`` does: the model and EMA
    construction, ``prepare_z_y``, and per iteration ``G.train(); D.train(); G_ema.train(); train(x, y);
    itr += 1``. What ``run`` does besides (loggers, Inception metrics, sample sheets, checkpoints) is left out.
    The case's real batches are handed in as one tensor per iteration (``num_D_steps`` chunks, as its loader's
    ``D_batch_size``), normalised as fakeclr does (``u8 / 127.5 - 1``). The changes around its code, both to the
    random numbers and not to what is computed: ``z_``'s sampler reseeds torch and numpy before the draw of each D
    step (fakeclr reseeds there too, at the real batch's fetch; the G step draws on from there on both sides), and
    an unconditional case (one class, ``n_classes`` 1) fills ``y_`` with zeros without drawing them."""
    os.chdir(os.path.join(anchor_dir, BIGGAN_DIR))
    sys.path.insert(0, os.getcwd())
    stub_modules(["torchvision", "torchvision.transforms", "torchvision.datasets", "torchvision.datasets.utils",
                  "tqdm", "h5py", "datasets"])
    import BigGAN as model
    import train_fns
    import utils

    config = vars(utils.prepare_parser().parse_args(spec["flags"]))
    # What run() derives from the data set and the activation names. Unconditional (fakeclr's c_dim 0): one class.
    config["resolution"], config["n_classes"] = spec["resolution"], max(spec["c_dim"], 1)
    config["G_activation"] = utils.activation_dict[config["G_nl"]]
    config["D_activation"] = utils.activation_dict[config["D_nl"]]
    utils.seed_rng(config["seed"])
    G, D = model.Generator(**config), model.Discriminator(**config)
    G_ema = model.Generator(**{**config, "skip_init": True, "no_optim": True})
    ema = utils.ema(G, G_ema, config["ema_decay"], config["ema_start"])
    GD = model.G_D(G, D)
    state_dict = {"itr": 0, "epoch": 0, "save_num": 0, "save_best_num": 0, "best_IS": 0, "best_FID": 999999,
                  "config": config}
    with torch.no_grad():                            # the case's initial state (fakeclr's seeded networks)
        for name, net in (("G", G), ("D", D), ("G_ema", G_ema)):
            net.load_state_dict(inputs["state"][name])
    G_batch_size = max(config["G_batch_size"], config["batch_size"])
    z_, y_ = utils.prepare_z_y(G_batch_size, G.dim_z, config["n_classes"], device="cpu", fp16=config["G_fp16"])
    draws = {"n": 0, "rounds": 0}
    sample = z_.sample_

    def reseeding_sample():
        if draws["n"] % (config["num_D_steps"] + 1) < config["num_D_steps"]:     # a D step's draw
            seed_iteration(inputs["seed_base"], draws["rounds"])
            draws["rounds"] += 1
        draws["n"] += 1
        sample()
    z_.sample_ = reseeding_sample
    if not spec["c_dim"]:
        # One class: fakeclr draws no labels, the reference's random_(0, 1) takes random numbers for its zeros.
        y_.sample_ = y_.zero_
    train = train_fns.GAN_training_function(G, D, GD, z_, y_, ema, state_dict, config)

    recorder = BigGANRecorder()

    def after_step(optimizer, args, kwargs):
        frame = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR):
            frame = frame.f_back
        recorder.step_done(optimizer, frame.f_locals, G_ema)
    from torch.optim.optimizer import register_optimizer_step_post_hook
    register_optimizer_step_post_hook(after_step)

    fetches = config["num_D_steps"]
    for k in range(spec["iterations"]):
        idx = torch.as_tensor(sum(inputs["batches"][k * fetches:(k + 1) * fetches], []))
        x = inputs["images"][idx].float() / 127.5 - 1
        y = inputs["labels"][idx].long() if spec["c_dim"] else torch.zeros(len(idx), dtype=torch.long)
        G.train()
        D.train()
        G_ema.train()
        train(x, y)
        state_dict["itr"] += 1
        recorder.records.append({"iteration": k, "phase": "end", "losses": {},
                                 "tensors": recorder.snapshot(G, D, G_ema)})
    torch.save({"records": recorder.records, "gen_c": []}, out_path)     # the labels: drawn on both sides


def main() -> None:
    anchor_dir, spec_path, inputs_path, out_path = sys.argv[1:5]
    warmup = int(sys.argv[sys.argv.index("--time") + 1]) if "--time" in sys.argv else None
    torch.set_num_threads(int(os.environ.get("PARITY_THREADS", "1")))
    spec = json.loads(open(spec_path).read())
    inputs = torch.load(inputs_path, weights_only=True)
    patch_cuda_calls()
    if spec["anchor"] == "biggan":
        if warmup is not None:
            raise SystemExit("--time: the speed comparison has no BigGAN case yet.")
        run_biggan(anchor_dir, spec, inputs, out_path)
        return
    os.chdir(anchor_dir)
    sys.path.insert(0, anchor_dir)

    import dnnlib
    from torch_utils import misc, training_stats
    import training.dataset
    from training import training_loop
    for module in ("contrastive_head", "contrastive_head_iteration"):
        try:
            head_module = __import__(f"training.{module}", fromlist=["x"])
            head_module.concat_all_gather = lambda t: t
        except ImportError:
            pass

    class ArrayDataset(training.dataset.Dataset):
        """The case's images, through the anchor's own Dataset base class (labels, shapes)."""

        def __init__(self, use_labels=False, **kwargs):
            self._images = inputs["images"].numpy()
            self._labels = inputs["labels"].numpy().astype(np.int64)
            super().__init__(name="parity", raw_shape=self._images.shape, use_labels=use_labels, **kwargs)

        def _load_raw_image(self, raw_idx):
            return self._images[raw_idx]

        def _load_raw_labels(self):
            return self._labels

    sys.modules["__main__"].ArrayDataset = ArrayDataset
    recorder = None if warmup is not None else Recorder(spec["c_dim"])
    timing = {"warmup": warmup} if warmup is not None else None
    feed = Feed(inputs, spec, recorder, timing)
    torch.utils.data.DataLoader = lambda *a, **k: feed
    misc.InfiniteSampler = lambda *a, **k: None
    if recorder is not None:
        original_report = training_stats.report

        def report(name, value):
            recorder.report(name, value)
            return original_report(name, value)
        training_stats.report = report

        def after_step(optimizer, args, kwargs):
            frame = sys._getframe(1)
            while frame is not None and frame.f_code.co_filename.startswith(TORCH_DIR):
                frame = frame.f_back
            if frame is not None and frame.f_code.co_name == "training_loop":   # a phase's step, not a head's
                recorder.phase_done(frame.f_locals)
        from torch.optim.optimizer import register_optimizer_step_post_hook
        register_optimizer_step_post_hook(after_step)

    kwargs = dnnlib.EasyDict(spec["training_loop"])
    for key in ("G_kwargs", "D_kwargs", "G_opt_kwargs", "D_opt_kwargs", "augment_kwargs", "loss_kwargs",
                "DHead_kwargs", "GHead_kwargs", "cl_loss_weight"):
        if key in kwargs:
            kwargs[key] = dnnlib.EasyDict(kwargs[key])
    kwargs.training_set_kwargs = dnnlib.EasyDict(class_name="__main__.ArrayDataset",
                                                 use_labels=bool(spec["c_dim"]))
    kwargs.run_dir = os.path.dirname(os.path.abspath(out_path))
    try:
        training_loop.training_loop(**kwargs)
    except Finished:
        pass
    if recorder is not None:
        torch.save({"records": recorder.records, "gen_c": recorder.gen_c}, out_path)
    else:
        with open(out_path, "w") as f:
            json.dump({"sec_per_kimg": timing["sec_per_kimg"]}, f)


if __name__ == "__main__":
    main()
