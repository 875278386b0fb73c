"""v1: nnserve's own JSON API (models, predictions, retraining jobs)."""
