"""Training: catalog specs, CSV reading, fit and score, the job queue and its contracts, promotion, the worker."""
