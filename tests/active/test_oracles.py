import torch

from almea_pyg.active import PseudoOracle, SimulatedOracle

LINKS = torch.tensor([[0, 1, 2], [2, 0, 1]])


def test_simulated_oracle_answers_from_ground_truth():
    oracle = SimulatedOracle(LINKS, num_targets=3)
    answer = oracle.answer(torch.tensor([[0, 1, 2], [2, 1, 1]]))
    assert answer.accepted.tolist() == [[0, 2], [2, 1]]
    assert answer.rejected.tolist() == [[1], [1]]
    assert repr(oracle) == "SimulatedOracle(3 links)"


def test_pseudo_oracle_accepts_everything():
    pairs = torch.tensor([[0, 1], [1, 1]])
    answer = PseudoOracle().answer(pairs)
    assert torch.equal(answer.accepted, pairs)
    assert answer.rejected.shape == (2, 0)
