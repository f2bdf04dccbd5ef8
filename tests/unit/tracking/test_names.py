"""MLflow names: metric keys without '@', nested results and parameters flattened."""

from ml.tracking.names import flat_params, group_metrics, metric_name, numeric_leaves


def test_metric_names_lose_the_at_and_plus_signs():
    assert metric_name("ndcg@10") == "ndcg_at_10"
    assert group_metrics({"history_16+": {"ndcg@1": 0.5}}) == {"history_16plus/ndcg_at_1": 0.5}
    assert group_metrics({"overall": {"ndcg@2": 0.5, "users": 3}, "sparse": {"recall@4": 0.25}}) == {
        "overall/ndcg_at_2": 0.5,
        "overall/users": 3.0,
        "sparse/recall_at_4": 0.25,
    }


def test_numeric_leaves_keep_numbers_only_under_slash_keys():
    nested = {"kl": 0.4, "ok": True, "note": "x", "valid": {"discover": {"ndcg@10": 0.07}}}
    assert numeric_leaves(nested, "synthetic/") == {"synthetic/kl": 0.4, "synthetic/valid/discover/ndcg_at_10": 0.07}


def test_params_are_dotted_and_lists_become_json():
    assert flat_params({"models": {"als": {"factors": 64}}, "ks": [1, 5]}) == {"models.als.factors": 64, "ks": "[1, 5]"}
