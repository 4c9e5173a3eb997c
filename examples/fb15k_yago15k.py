"""ALMEA (without active learning) on FB15K-YAGO15K, the paper's schedule by default.

    python examples/fb15k_yago15k.py --data-dir ../shared/data/mmkg --seed-ratio 0.2

Takes every option of ``almea-pyg train`` (see ``--help``). Writes ``result.json``
(protocol, metrics, seconds per epoch, peak memory), ``log.csv`` and
``checkpoint.pt`` into ``--output``; ``--variant base`` trains the base model
(LSL and LSC off) for comparison.
"""

import sys

from almea_pyg.cli import main

if __name__ == "__main__":
    defaults = ["train", "--dataset", "FB15K_YAGO15K", "--output", "runs/fb15k_yago15k"]
    sys.exit(main(defaults + sys.argv[1:]))
