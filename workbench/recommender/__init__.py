"""The session recommender: item embeddings, kNN retrieval, ranking, bandits."""
