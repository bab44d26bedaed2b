"""``fakeclr export``: the generator as an ONNX model or a TorchScript module, for use outside fakeclr.

Two graphs can be exported from a network file's ``G_ema`` (or another generator in it):

- the **generator**: ``z [N, z_dim]`` (and ``c [N, c_dim]`` for a conditional network) -> ``img [N, C, R, R]``,
  with truncation ``psi`` (and cutoff) and the noise mode fixed at export;
- the **synthesis network** alone: ``ws [N, num_ws, w_dim]`` -> ``img``.

Images are float32 in ``[-1, 1]`` (mostly; the generator is not clamped), NCHW, as ``fakeclr generate`` computes
them before converting to 8-bit. The batch size is dynamic. The modulated convolutions run unfused (styles scale
the activations, one weight for the whole batch): the same function as the grouped path, without a group count
that depends on the batch. Nothing here needs a custom operator: fakeclr has none.

ONNX export uses ``torch.onnx.export(dynamo=True)`` and needs the optional packages ``onnx`` and ``onnxscript``
(``pip install 'fakeclr[export]'``, which also brings ``onnxruntime`` for the check). After writing, each file is
run on two batch sizes and compared with PyTorch (:func:`check_export`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import UserError
from ..nn import Generator
from ..files import atomic_write

__all__ = ["ExportedGenerator", "ExportedSynthesis", "export_module", "example_inputs", "check_export",
           "ONNX_TOLERANCE"]

# Max abs difference (images in [-1, 1]) allowed between onnxruntime and PyTorch: float32 reassociation in
# onnxruntime's fused kernels gives about 1e-6 at 16-32 px; 1e-4 leaves room for deeper networks.
ONNX_TOLERANCE = 1e-4
NOISE_MODES = ("const", "random", "none")


class ExportedGenerator(torch.nn.Module):
    """``z [N, z_dim]`` (, ``c [N, c_dim]``) -> ``img [N, C, R, R]`` with truncation and noise mode fixed."""

    def __init__(self, G: Generator, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                 noise_mode: str = "const"):
        super().__init__()
        self.G, self.psi, self.cutoff, self.noise_mode = G, float(truncation_psi), truncation_cutoff, noise_mode

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z, c, truncation_psi=self.psi, truncation_cutoff=self.cutoff, noise_mode=self.noise_mode,
                      fused_modconv=False)


class ExportedSynthesis(torch.nn.Module):
    """``ws [N, num_ws, w_dim]`` -> ``img [N, C, R, R]`` (the synthesis network alone)."""

    def __init__(self, G: Generator, noise_mode: str = "const"):
        super().__init__()
        self.synthesis, self.noise_mode = G.synthesis, noise_mode

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws, noise_mode=self.noise_mode, fused_modconv=False)


def example_inputs(G: Generator, synthesis: bool, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Inputs of the exported graph for ``batch`` samples: ``(ws,)``, ``(z,)`` or ``(z, c)`` (one-hot c)."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(batch, G.z_dim, generator=gen)
    if synthesis:
        c = torch.nn.functional.one_hot(torch.arange(batch) % G.c_dim, G.c_dim).float() if G.c_dim else None
        with torch.no_grad():
            return (G.mapping(z, c),)
    if G.c_dim:
        return z, torch.nn.functional.one_hot(torch.arange(batch) % G.c_dim, G.c_dim).float()
    return (z,)


def _input_names(G: Generator, synthesis: bool) -> list[str]:
    return ["ws"] if synthesis else (["z", "c"] if G.c_dim else ["z"])


def export_module(G: Generator, path: str | Path, fmt: str, synthesis: bool = False, truncation_psi: float = 1.0,
                  truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.nn.Module:
    """Write ``G``'s generator (or synthesis network) to ``path`` as ``fmt`` ("onnx" or "torchscript"), batch
    size dynamic. Returns the wrapped PyTorch module the file computes."""
    if noise_mode not in NOISE_MODES:
        raise UserError(f"--noise-mode {noise_mode!r} is not one of: {', '.join(NOISE_MODES)}.")
    if synthesis and (truncation_psi != 1.0 or truncation_cutoff is not None):
        raise UserError("--trunc and --trunc-cutoff act in the mapping network; the --synthesis graph starts from "
                        "w, so truncate the ws you feed it instead.")
    G = G.eval().requires_grad_(False).cpu()
    module = (ExportedSynthesis(G, noise_mode) if synthesis
              else ExportedGenerator(G, truncation_psi, truncation_cutoff, noise_mode)).eval()
    inputs = example_inputs(G, synthesis, batch=2)
    names = _input_names(G, synthesis)
    path = Path(path)
    import warnings
    if fmt == "torchscript":
        with warnings.catch_warnings(), torch.no_grad():
            # The tracer warns about Python numbers taken from shapes (paddings, filter sizes): they do not depend
            # on the batch, and check_export compares two batch sizes with PyTorch.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(module, inputs, check_trace=False)

        def save(tmp: str) -> None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)   # TorchScript is deprecated in PyTorch 2.10+
                torch.jit.save(traced, tmp)
        atomic_write(path, save)
    elif fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise UserError("ONNX export needs the optional packages onnx and onnxscript: "
                            "pip install 'fakeclr[export]'.") from None
        batch = torch.export.Dim("batch", min=1, max=65536)
        shapes = {name: {0: batch} for name in names}

        def write(tmp: str) -> None:
            import contextlib
            import io
            import logging
            log = logging.getLogger("torch.onnx")
            level, log.level = log.level, logging.ERROR        # "torchvision is not installed. Skipping ..."
            try:
                with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
                    warnings.simplefilter("ignore")            # the exporter's progress lines and deprecations
                    program = torch.onnx.export(module, inputs, dynamo=True, input_names=names,
                                                output_names=["img"], dynamic_shapes=shapes, verbose=False)
                    program.save(tmp)
            finally:
                log.setLevel(level)
        atomic_write(path, write)
    else:
        raise ValueError(f"unknown export format {fmt!r}")
    return module


@dataclass
class ExportCheck:
    batch: int
    max_abs_diff: float
    shape: tuple[int, ...]


def check_export(module: torch.nn.Module, G: Generator, path: str | Path, fmt: str, synthesis: bool,
                 batches: tuple[int, ...] = (1, 5)) -> list[ExportCheck]:
    """Run the exported file (onnxruntime or ``torch.jit.load``) on ``batches`` and compare with ``module``.

    With ``noise_mode="random"`` the two draw different noise, so only the shapes are meaningful."""
    results = []
    if fmt == "onnx":
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("Checking the ONNX file needs onnxruntime: pip install 'fakeclr[export]'.") from None
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        run = lambda *xs: torch.from_numpy(session.run(None, {n: x.numpy() for n, x in zip(names, xs)})[0])  # noqa: E731
    else:
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            run = torch.jit.load(str(path))
    for batch in batches:
        inputs = example_inputs(G, synthesis, batch, seed=batch)
        with torch.no_grad():
            ref, got = module(*inputs), run(*inputs)
        results.append(ExportCheck(batch, float((ref - got).abs().max()), tuple(got.shape)))
    return results
