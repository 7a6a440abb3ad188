"""Moving runs in and out: CSV/JSON export, MLflow and TensorBoard both ways."""
