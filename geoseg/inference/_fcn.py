"""The plain fully convolutional network of Long, Shelhamer and Darrell (2015) on any smp encoder.

FCN-8s: 1x1 convolutions score the encoder's stride-32, -16 and -8 features; the coarse
scores are upsampled and summed with the finer ones, then upsampled bilinearly to the
input size. No decoder blocks: it is the baseline the U-Net family improved on, kept so a
comparison table can show what the decoders buy."""

from __future__ import annotations

from typing import Any


def build_fcn(encoder: str, in_channels: int, classes: int, **kwargs: Any) -> Any:
    """An FCN-8s module with an smp encoder (random weights: no download)."""
    import torch
    from torch import nn

    from geoseg.inference._compat import import_smp

    smp = import_smp()
    depth = int(kwargs.pop("encoder_depth", 5))
    if kwargs:
        raise TypeError(f"FCN takes no arguments {sorted(kwargs)}")
    if depth < 3:
        raise ValueError("FCN needs encoder_depth >= 3 (stride-8 features)")

    class FCN(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = smp.encoders.get_encoder(
                encoder, in_channels=in_channels, depth=depth, weights=None
            )
            chans = self.encoder.out_channels
            self.score = nn.ModuleList(nn.Conv2d(c, classes, 1) for c in chans[-3:])

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            feats = self.encoder(x)[-3:]  # strides 8, 16, 32 (for depth 5)
            out = self.score[2](feats[2])
            for k in (1, 0):
                skip = self.score[k](feats[k])
                out = nn.functional.interpolate(
                    out, size=skip.shape[-2:], mode="bilinear", align_corners=False
                )
                out = out + skip
            return nn.functional.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)

    return FCN()
