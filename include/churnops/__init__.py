"""churnops: the churn model lifecycle, orchestrated by Airflow."""
