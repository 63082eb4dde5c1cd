"""The schema: the Alembic revisions make exactly the tables the models describe, and
upgrading twice changes nothing."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from kinetoscope.studio.db import Base, Database


def test_migrations_match_the_models(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'studio.db'}")
    database.upgrade()
    database.upgrade()  # at head already: nothing to do
    with database.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
        tables = set(inspect(connection).get_table_names())
    database.dispose()
    assert differences == []
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
