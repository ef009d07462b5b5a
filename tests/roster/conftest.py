from tests.manage.inproc import database

__all__ = ["database"]
