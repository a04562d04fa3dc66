"""FFT power spectrum of sensor batches, on the CPU (numpy.fft) or the GPU (cuFFT)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from kernels.compute.backend import as_xp, to_numpy
from kernels.compute.spectrum import Window, power_spectrum
from kernels.records import Keyed
from ringctl import KernelContext, ring_kernel
from ringctl.authoring import device_scope, map_payload

__all__ = ["SpectrumParams", "spectrum"]

#: Channels whose peak frequency bin is shown in ``ringctl ps`` (the metrics stay short).
PEAK_CHANNELS = 4


class SpectrumParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    nfft: int | None = Field(
        None,
        ge=2,
        description=(
            "Frame length: the batch is cut into frames of nfft rows whose spectra are "
            "averaged (Welch); null: one frame, the whole batch."
        ),
    )
    window: Window = Field("hann", description="Taper applied to each frame: hann or none.")
    detrend: bool = Field(True, description="Subtract each frame's mean (drops the DC bin).")
    host_output: bool = Field(
        True,
        description=(
            "Send spectra as NumPy arrays even on cuda (they are small); false keeps them "
            "on the GPU for a GPU kernel downstream."
        ),
    )


def _setup_spectrum(ctx: KernelContext) -> None:
    p: SpectrumParams = ctx.params
    with device_scope(ctx):
        # cuFFT builds a plan per shape on first use; do one now so launch pays for it.
        power_spectrum(ctx.xp.zeros((p.nfft or 8, 1), dtype="float32"), xp=ctx.xp, nfft=p.nfft)


@ring_kernel(kernel_id="spectrum", params=SpectrumParams, ports=("out",), setup=_setup_spectrum)
async def spectrum(ctx: KernelContext) -> None:
    """Send the ``(nfft // 2 + 1, channels)`` power spectrum of each ``(rows, channels)`` batch."""
    p: SpectrumParams = ctx.params
    xp = ctx.xp
    frames = 0

    def spec(x: object) -> object:
        power = power_spectrum(as_xp(x, xp), xp=xp, nfft=p.nfft, window=p.window, detrend=p.detrend)
        return to_numpy(power) if p.host_output else power

    async for msg in ctx.messages():
        with device_scope(ctx):
            out = map_payload(msg, spec)
        frames += 1
        ctx.metrics["spectra"] = frames
        payload = out.data if isinstance(out, Keyed) else out
        if getattr(payload, "ndim", 0) == 2:
            peaks = to_numpy(payload[:, :PEAK_CHANNELS].argmax(axis=0))
            for c, b in enumerate(peaks.tolist()):
                ctx.metrics[f"peak_bin_ch{c}"] = b
        await ctx.send(out)
