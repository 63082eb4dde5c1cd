"""Alembic's environment: runs revisions on the connection `Database.upgrade` hands over (or
on ``sqlalchemy.url`` when run by the ``alembic`` command)."""

from alembic import context
from sqlalchemy import create_engine

from kinetoscope.studio.db import Base

config = context.config
target_metadata = Base.metadata


def run_on(connection: object) -> None:
    # batch mode: SQLite alters a table by copying it, which later revisions will need
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_on(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as connection:
        run_on(connection)
        connection.commit()
