"""An app installed only in tests/test_celery_app.py's fresh interpreter, to show that
autodiscovery imports an app's ``tasks`` module and nothing else."""
