"""MLflow: an experiment per study, a parent run per invocation, a child run per trial."""
