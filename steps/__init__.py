"""The steps of each DAG, importable without Airflow: the DAG files in dags/ only wire these.

A steps module sits above every stage and below the application (citypipe/).
"""
