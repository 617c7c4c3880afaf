"""Everything that knows about Airflow: the only package allowed to import it."""
