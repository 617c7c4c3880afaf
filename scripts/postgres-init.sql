-- Databases of the prod profile (docker-compose.yml): Airflow metadata and MLflow backend;
-- the warehouse is the default database `churnops`.
CREATE DATABASE airflow OWNER churnops;
CREATE DATABASE mlflow OWNER churnops;
