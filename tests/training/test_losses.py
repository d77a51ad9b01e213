import numpy as np
import pytest
import torch
import torch.nn.functional as F

from napari_seg.training import LOSSES, class_weights
from napari_seg.training.data import IGNORE_INDEX
from napari_seg.training.losses import SegmentationLoss, resolve_loss

CONCRETE = [name for name in LOSSES if name != "auto"]


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 16, 16, generator=g, requires_grad=True)
    target = torch.randint(0, 3, (2, 16, 16), generator=g)
    target[:, :5] = IGNORE_INDEX
    target[0, 10:, 10:] = IGNORE_INDEX
    return logits, target


@pytest.mark.parametrize("name", CONCRETE)
def test_ignored_pixels_give_exactly_zero_gradient(name):
    logits, target = _batch()
    loss = SegmentationLoss(name, num_classes=3, class_counts=[500, 60, 9])(logits, target)
    loss.backward()
    ignored = (target == IGNORE_INDEX).unsqueeze(1).expand_as(logits)
    assert torch.all(logits.grad[ignored] == 0)
    assert logits.grad[~ignored].abs().sum() > 0
    # and the loss does not depend on what the network says there
    changed = logits.detach().clone()
    changed[ignored] += 5 * torch.randn(int(ignored.sum()))
    again = SegmentationLoss(name, num_classes=3, class_counts=[500, 60, 9])(changed, target)
    assert again.item() == pytest.approx(loss.item(), rel=1e-5)


def test_class_weights_follow_the_formula():
    counts = np.array([700, 200, 100])
    assert class_weights(counts) == pytest.approx((1000 - counts) / 1000)
    with pytest.raises(ValueError, match="at least one annotated"):
        class_weights([0, 0])


def test_weighted_ce_and_focal_against_their_definitions():
    logits, target = _batch(1)
    counts = [500, 60, 9]
    w = torch.from_numpy(class_weights(counts))
    expected = F.cross_entropy(logits, target, weight=w, ignore_index=IGNORE_INDEX)
    got = SegmentationLoss("weighted-ce", num_classes=3, class_counts=counts)(logits, target)
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    # focal: mean over annotated pixels of -(1 - p_t)^2 log p_t
    valid = target != IGNORE_INDEX
    logp = F.log_softmax(logits, 1).gather(1, target.clamp(min=0).unsqueeze(1)).squeeze(1)
    focal = (-((1 - logp.exp()) ** 2) * logp)[valid].mean()
    got = SegmentationLoss("focal", num_classes=3)(logits, target)
    assert got.item() == pytest.approx(focal.item(), rel=1e-5)


def test_weighted_ce_plus_dice_is_the_sum_of_its_terms():
    logits, target = _batch(2)
    counts = [500, 60, 9]
    both = SegmentationLoss("weighted-ce+dice", num_classes=3, class_counts=counts)
    ce = SegmentationLoss("weighted-ce", num_classes=3, class_counts=counts)(logits, target)
    dice = SegmentationLoss("dice", num_classes=3)(logits, target)
    assert both(logits, target).item() == pytest.approx(ce.item() + dice.item(), rel=1e-6)
    with pytest.raises(ValueError, match="needs class_counts"):
        SegmentationLoss("weighted-ce+dice", num_classes=3)


def test_a_batch_without_annotation_gives_zero_not_nan():
    logits = torch.randn(1, 2, 8, 8, requires_grad=True)
    target = torch.full((1, 8, 8), IGNORE_INDEX)
    loss = SegmentationLoss("ce+dice", num_classes=2)(logits, target)
    loss.backward()
    assert loss.item() == 0
    assert torch.all(logits.grad == 0)


def test_auto_loss_is_class_weighted_for_sparse_multiclass_labels():
    assert resolve_loss("auto", sparse=True, num_classes=3) == "weighted-ce+dice"
    assert resolve_loss("auto", sparse=True, num_classes=2) == "ce+dice"
    assert resolve_loss("auto", sparse=False, num_classes=8) == "ce+dice"
    # objects and their one-pixel boundaries (instances="boundaries"): no Dice term
    assert resolve_loss("auto", sparse=False, num_classes=3, boundaries=True) == "weighted-ce"
    assert resolve_loss("ce+dice", sparse=False, num_classes=3, boundaries=True) == "ce+dice"
    assert all(resolve_loss(n, sparse=True, num_classes=8) == n for n in CONCRETE)
    with pytest.raises(ValueError, match="loss must be one of"):
        resolve_loss("dicey", sparse=True, num_classes=3)
    with pytest.raises(ValueError, match="got 'auto'"):  # resolved before it gets here
        SegmentationLoss("auto", num_classes=3)
