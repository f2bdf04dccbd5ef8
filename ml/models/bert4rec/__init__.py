"""BERT4Rec: masked-item sequential recommender (network, data, Lightning module, Recommender)."""
