"""User tools, the library behind ``fakeclr generate / interpolate / style-mix / project / report / import``.

``generate`` (latents, per-layer truncation, rendering), ``interpolate``, ``style_mixing``, ``project``
(GAN inversion), ``report`` (run comparison pages), ``importer`` (published pickles, no code executed) and
``media`` (GIF/MP4/tiling helpers). See docs/tools.md.
"""
