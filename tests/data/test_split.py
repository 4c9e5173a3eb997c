import pytest
import torch

from almea_pyg.data.split import split_links


def _links(num: int) -> torch.Tensor:
    # Distinct columns (i, 100 + i), so a column identifies its link.
    index = torch.arange(num)
    return torch.stack([index, 100 + index])


def _columns(links: torch.Tensor) -> list[tuple[int, int]]:
    return [tuple(col) for col in links.t().tolist()]


@pytest.mark.parametrize(
    ("ratio", "valid_ratio", "sizes"),
    [(0.2, 0.0, (20, 0, 80)), (0.5, 0.0, (50, 0, 50)), (0.8, 0.1, (80, 10, 10))],
)
def test_split_sizes(ratio: float, valid_ratio: float, sizes: tuple) -> None:
    train, valid, test = split_links(
        _links(100), ratio, seed=0, valid_ratio=valid_ratio
    )
    assert (train.size(1), valid.size(1), test.size(1)) == sizes
    assert train.size(0) == valid.size(0) == test.size(0) == 2


def test_split_is_a_partition_of_the_links() -> None:
    links = _links(37)
    train, valid, test = split_links(links, 0.3, seed=4, valid_ratio=0.2)
    parts = _columns(train) + _columns(valid) + _columns(test)
    assert len(parts) == 37
    assert sorted(parts) == sorted(_columns(links))


def test_split_shuffles() -> None:
    train, _, test = split_links(_links(100), 0.5, seed=0)
    assert torch.cat([train, test], dim=1).tolist() != _links(100).tolist()


def test_split_seeded() -> None:
    links = _links(50)
    first = split_links(links, 0.2, seed=7, valid_ratio=0.1)
    again = split_links(links, 0.2, seed=7, valid_ratio=0.1)
    other = split_links(links, 0.2, seed=8, valid_ratio=0.1)
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    assert not torch.equal(first[0], other[0])


@pytest.mark.parametrize("ratio", [0.0, 1.0, -0.1, 1.5])
def test_split_bad_ratio(ratio: float) -> None:
    with pytest.raises(ValueError, match="seed ratio"):
        split_links(_links(10), ratio)


@pytest.mark.parametrize(
    ("ratio", "valid_ratio"), [(0.5, -0.1), (0.5, 0.5), (0.8, 0.3)]
)
def test_split_bad_valid_ratio(ratio: float, valid_ratio: float) -> None:
    with pytest.raises(ValueError, match="valid_ratio"):
        split_links(_links(10), ratio, valid_ratio=valid_ratio)


def test_split_count_is_exact_for_decimal_ratios() -> None:
    train, _, test = split_links(_links(90), 0.7, seed=0)
    assert (train.size(1), test.size(1)) == (63, 27)


def test_pool_ratio_hides_links_and_keeps_the_seeds() -> None:
    links = _links(100)
    train0, _, test0 = split_links(links, 0.2, seed=4)
    train, valid, test = split_links(
        links, 0.2, seed=4, valid_ratio=0.1, pool_ratio=0.3
    )
    assert (train.size(1), valid.size(1), test.size(1)) == (20, 10, 40)
    assert torch.equal(train, train0)
    shown = set(_columns(train)) | set(_columns(valid)) | set(_columns(test))
    assert len(shown) == 70 and set(_columns(test)) < set(_columns(test0))
    with pytest.raises(ValueError, match="pool_ratio"):
        split_links(links, 0.5, pool_ratio=0.5)
    with pytest.raises(ValueError, match="pool_ratio"):
        split_links(links, 0.2, pool_ratio=-0.1)
