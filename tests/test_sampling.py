import pytest
import torch

from datamodules.sampling import ResumableSampler


def test_epochs_differ_and_repeat_with_the_seed():
    a, b = ResumableSampler(20, seed=1), ResumableSampler(20, seed=1)
    first = list(a)
    a.set_epoch(1)
    assert sorted(first) == list(range(20)) and list(a) != first
    assert list(b) == first


def test_ranks_share_an_epoch_without_overlap():
    ranks = [ResumableSampler(10, seed=0, rank=r, world_size=3) for r in range(3)]
    orders = [list(s) for s in ranks]
    assert all(len(o) == 4 for o in orders)  # padded to equal shares
    assert set().union(*orders) == set(range(10))


def test_resume_skips_what_was_done_once():
    sampler = ResumableSampler(12, seed=3)
    full = list(sampler)
    sampler.resume(epoch=0, samples_done=5)
    assert len(sampler) == 12 and list(sampler) == full[5:]
    assert list(sampler) == full  # the next pass of the same epoch is whole again


def test_weighted_epochs_draw_in_proportion_and_resume():
    """`weights` (e.g. 1 / episode length) draw with replacement in proportion, seeded and resumable."""
    weights = torch.tensor([1.0] * 10 + [9.0])  # index 10 should take about half of the draws
    sampler = ResumableSampler(11, seed=2, weights=weights)
    draws = []
    for epoch in range(40):
        sampler.set_epoch(epoch)
        draws.extend(sampler)
    assert 0.4 < draws.count(10) / len(draws) < 0.6 and set(draws) == set(range(11))
    sampler.set_epoch(3)
    full = list(sampler)
    again = ResumableSampler(11, seed=2, weights=weights.clone())
    again.set_epoch(3)
    assert list(again) == full  # the same seed and epoch draw the same
    sampler.resume(epoch=3, samples_done=4)
    assert list(sampler) == full[4:]
    with pytest.raises(ValueError, match="sampling weights"):
        ResumableSampler(3, weights=torch.tensor([1.0, float("nan"), 1.0]))
