"""Our losses against segmentation-models-pytorch's: where they agree and how they differ."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(scope="module")
def smp_losses() -> Any:
    from geoseg.inference._compat import import_smp

    import_smp()  # the torchvision patch, before smp's import
    from segmentation_models_pytorch import losses

    return losses


def _batch(classes: int = 4, seed: int = 0) -> tuple[Any, Any]:
    import torch

    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, classes, 16, 16, generator=g)
    target = torch.randint(0, classes, (2, 16, 16), generator=g)
    target[0, :4] = 255  # nodata labels
    return logits, target


WEIGHTS = [1.0, 2.0, 0.5, 1.5]


@pytest.mark.slow
def test_ce_is_torch_and_not_smps_soft_ce(smp_losses: Any) -> None:
    import torch

    from geoseg.training._losses import make_loss

    logits, target = _batch()
    valid = target != 255
    ours = make_loss(["ce"])(logits, target)
    assert torch.equal(ours, torch.nn.functional.cross_entropy(logits, target, ignore_index=255))
    w = torch.tensor(WEIGHTS)
    assert torch.equal(make_loss(["ce"], WEIGHTS)(logits, target),
                       torch.nn.functional.cross_entropy(logits, target, weight=w, ignore_index=255))  # fmt: skip
    smp = smp_losses.SoftCrossEntropyLoss(smooth_factor=0.0, ignore_index=255)(logits, target)
    # smp divides by every pixel, ignored ones too
    torch.testing.assert_close(smp, ours * valid.sum() / valid.numel())
    assert not torch.allclose(smp, ours)


@pytest.mark.parametrize(("name", "settings"), [("dice", {}), ("tversky", {"alpha": 0.3, "beta": 0.7})])
def test_dice_and_tversky_equal_smps_only_with_every_class_present(
    smp_losses: Any, name: str, settings: dict[str, float]
) -> None:
    import torch

    from geoseg.training._losses import make_loss

    cls = smp_losses.DiceLoss if name == "dice" else smp_losses.TverskyLoss
    smp = cls("multiclass", ignore_index=255, smooth=1.0, **settings)
    logits, target = _batch()
    assert set(target[target != 255].unique().tolist()) == {0, 1, 2, 3}
    ours = make_loss([name])(logits, target)
    torch.testing.assert_close(ours, smp(logits, target))  # equal to float rounding
    # class weights weigh only the CE and focal terms of ours: the same value with them
    assert torch.equal(make_loss([name], WEIGHTS)(logits, target), ours)

    absent = target.masked_fill(target == 3, 1)  # class 3 not in this batch
    ours, theirs = make_loss([name])(logits, absent), smp(logits, absent)
    assert ours - theirs > 0.1  # smp drops the absent class's term (sets it to 0); ours keeps it


def test_focal_is_softmax_focal_not_smps_one_vs_rest(smp_losses: Any) -> None:
    import torch
    from segmentation_models_pytorch.losses._functional import softmax_focal_loss_with_logits

    from geoseg.training._losses import make_loss

    logits, target = _batch()
    valid = target != 255
    ours = make_loss(["focal"])(logits, target)
    same = softmax_focal_loss_with_logits(logits, target.masked_fill(~valid, 0), gamma=2.0, reduction="none")
    assert torch.equal(ours, same[valid].mean())  # the textbook softmax focal loss, bit for bit
    one_vs_rest = smp_losses.FocalLoss("multiclass", ignore_index=255)(logits, target)
    assert not torch.allclose(ours, one_vs_rest, rtol=0.1)
    assert not torch.allclose(make_loss(["focal"], WEIGHTS)(logits, target), ours)  # ours takes class weights
