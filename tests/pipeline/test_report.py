from almea_pyg.pipeline.grid import Cell, training_label
from almea_pyg.pipeline.report import PAPER_RESULTS, paper_reference


def test_the_paper_figure_only_for_the_papers_schedule():
    cell = Cell("FB15K_DB15K", 0.2, "almea+ds3", 0, 500, rounds=5, interval=50)
    cell = Cell(**{**cell.key(), "budget": 0.01, "alpha": 0.35})
    assert paper_reference(cell)["source"] == "Table 1: ALMEA"
    assert paper_reference(Cell(**{**cell.key(), "epochs": 100})) is None
    assert paper_reference(Cell(**{**cell.key(), "pool_ratio": 0.1})) is None


def test_the_codes_protocol_is_shown_the_papers_almea_row():
    for (dataset, ratio, variant), row in PAPER_RESULTS.items():
        if variant == "almea+ds3":
            assert PAPER_RESULTS[dataset, ratio, "almea+ds3+pseudo"] == row


def test_training_label_names_what_differs_from_the_paper():
    plain = Cell("FB15K_DB15K", 0.2, "almea", 0, 500)
    assert training_label(plain.key()) == ""
    minibatch = Cell("FB15K_DB15K", 0.2, "almea", 0, 500, fanouts=(10, 10))
    assert training_label(minibatch.key()) == " fanouts10x10"
    clipped = Cell("FB15K_DB15K", 0.2, "almea", 0, 500, max_grad_norm=1.0)
    assert training_label(clipped.key()) == " clip1"
