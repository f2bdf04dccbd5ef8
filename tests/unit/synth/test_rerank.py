"""The language-model re-ranker with a recording stand-in for the model (the real model: tests/integration)."""

import numpy as np

from ml.config import Settings
from ml.data.interactions import Interactions
from ml.synth import strategies as S
from ml.synth.rerank import LanguageModelReranker

DAY = 86_400 * 10**9


class RecordingScorer:
    """Log-likelihood -1 for every line, 0 for a lantern after a history that shows one (PMI 1 there)."""

    name = "recording"
    supports_scoring = True

    def __init__(self):
        self.prefixes: list[str] = []

    def score(self, prefix, continuations):
        self.prefixes.append(prefix)
        has_history = "2011-" in prefix
        return np.array([0.0 if has_history and "lantern" in c else -1.0 for c in continuations])

    def close(self):
        pass


def test_scores_are_pmi_over_the_customers_orders_newest_first(tmp_path):
    train = Interactions.from_arrays([0, 0], [0, 1], [1_300_000_000 * 10**9, 1_300_000_000 * 10**9 + 3 * DAY],
                                     n_users=1, n_items=4)  # fmt: skip
    titles = np.array(["RED HEART", "WHITE CANDLE", "GLASS LANTERN", "TEA TOWEL"], dtype=object)
    inputs = S.StrategyInputs(train=train, cut_ns=2 * 10**18, buyers_before=np.ones(4, int), titles=titles)
    lists = S.CandidateLists(np.array([0]), [np.array([2, 3])], [np.array([1.0, 0.5])], np.array([0]))
    scorer = RecordingScorer()
    rerank = LanguageModelReranker(scorer, Settings().with_overrides({"paths": {"home": str(tmp_path)}}))
    (pmi,) = rerank(lists, inputs, "prior")
    np.testing.assert_allclose(pmi, [1.0, 0.0])  # lantern: 0 - (-1); tea towel: -1 - (-1)
    conditional = next(p for p in scorer.prefixes if "2011-" in p)
    assert conditional.index("white candle") < conditional.index("red heart")  # newest order first
    assert conditional.rstrip().endswith("earlier:")
    assert sum("2011-" not in p for p in scorer.prefixes) == 1  # the history-free prior, once for both titles
