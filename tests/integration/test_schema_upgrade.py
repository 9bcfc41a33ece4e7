"""A database made by an earlier version keeps working: new optional columns are added, old rows kept."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Field, SQLModel

from shared.db import create_tables, make_engine
from shared.settings import ServiceSettings

TABLE = f"upgrade_{uuid.uuid4().hex[:8]}"


class Before(SQLModel, table=True):
    __tablename__ = TABLE
    __table_args__ = {"keep_existing": True}
    id: str = Field(primary_key=True)
    name: str


def _after(required: bool) -> type[SQLModel]:
    metadata = SQLModel.metadata.__class__()  # its own metadata: the same table name, a newer shape

    class Base(SQLModel):
        pass

    Base.metadata = metadata  # type: ignore[misc]
    if required:
        class Strict(Base, table=True):
            __tablename__ = TABLE
            id: str = Field(primary_key=True)
            name: str
            must: str
        return Strict

    class After(Base, table=True):
        __tablename__ = TABLE
        id: str = Field(primary_key=True)
        name: str
        route: str | None = None
    return After


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    prefix = f"up{uuid.uuid4().hex[:8]}"
    settings = ServiceSettings(data_dir=tmp_path, db_schema_prefix=prefix, database_url=os.environ.get("DATABASE_URL"))
    eng = make_engine("upgrade", settings)
    yield eng
    if eng.dialect.name == "postgresql":
        with eng.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{prefix}_upgrade" CASCADE'))
    eng.dispose()


def test_a_new_optional_column_is_added_and_old_rows_are_kept(engine: Engine) -> None:
    create_tables(engine, [Before])
    with engine.begin() as conn:
        conn.execute(Before.__table__.insert().values(id="a", name="kept"))  # type: ignore[attr-defined]
    after = _after(required=False)
    create_tables(engine, [after])
    create_tables(engine, [after])  # and again: nothing left to add
    with engine.begin() as conn:
        conn.execute(after.__table__.insert().values(id="b", name="new", route='["Hackney"]'))  # type: ignore[attr-defined]
        rows = conn.execute(after.__table__.select().order_by(after.__table__.c.id)).all()  # type: ignore[attr-defined]
    assert [tuple(r) for r in rows] == [("a", "kept", None), ("b", "new", '["Hackney"]')]


def test_a_new_required_column_is_refused_with_what_to_do(engine: Engine) -> None:
    create_tables(engine, [Before])
    with pytest.raises(RuntimeError, match=f"table {TABLE} has no column must.*make clean"):
        create_tables(engine, [_after(required=True)])
