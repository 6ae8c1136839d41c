"""The triggers that keep collector_latestunit (0012: its unique index must exist first)."""

from django.db import migrations

# PostgreSQL keeps collector_latestunit (collector.ledger.LatestUnit) in the same statement as
# the ledger write that changes it, whatever code wrote it (bulk updates included): statement
# triggers with transition tables, so a national run's 12,500 units cost one set-based insert.
# Each row carries its unit's run (id and creation), so "is the new unit newer" is a comparison
# of two rows, not four index lookups per row. Elsewhere the table stays empty and the console
# works the latest units out on each read.
COLUMNS = "monday, school_id, unit_id, status, run_id, run_created_at"
# Of two units of one school-week, the later run's wins (by creation, then id), as a concurrent
# writer's may have arrived between our read and our insert.
ON_CONFLICT = """
    ON CONFLICT (monday, school_id) DO UPDATE
        SET unit_id = EXCLUDED.unit_id, status = EXCLUDED.status, run_id = EXCLUDED.run_id,
            run_created_at = EXCLUDED.run_created_at
        WHERE (collector_latestunit.run_created_at, collector_latestunit.run_id)
            < (EXCLUDED.run_created_at, EXCLUDED.run_id)
"""
# The newest of ``source``'s units for each school-week their runs hold.
UNITS_UPSERT = f"""
    INSERT INTO collector_latestunit ({COLUMNS})
    SELECT DISTINCT ON (w.monday, n.school_id)
           w.monday, n.school_id, n.id, n.status, r.id, r.created_at
    FROM {{source}} n
    JOIN collector_collectionrun r ON r.id = n.run_id,
         LATERAL collector_school_weeks(r.date_from, r.date_to) AS w(monday)
    WHERE n.status <> 'cancelled' {{only}}
    ORDER BY w.monday, n.school_id, r.created_at DESC, r.id DESC
    {ON_CONFLICT}
"""

CREATE = f"""
-- The school weeks (Mondays) a window holds wholly, Monday to Friday:
-- collector.completeness.school_weeks in SQL.
CREATE FUNCTION collector_school_weeks(date_from date, date_to date) RETURNS SETOF date
LANGUAGE sql IMMUTABLE ROWS 3 AS $$
    SELECT d::date FROM generate_series(
        (date_from + (8 - extract(isodow FROM date_from)::int) % 7)::timestamp,
        (date_to - 4)::timestamp, interval '7 days') AS d
$$;

-- The latest unit of each (school, Monday) pair given, from the ledger: each pair's covering
-- runs (a dozen a week), then each run's unit of the school by its unique index. Fenced: the
-- planner cannot see into the arrays, and its own choice (every unit of each school, or each
-- pair against every run) took 3-5 times as long for a national run cancelled.
CREATE FUNCTION collector_latest_unit_fill(schools bigint[], mondays date[]) RETURNS void
LANGUAGE sql AS $$
    WITH pairs AS MATERIALIZED (
        SELECT DISTINCT school_id, monday FROM unnest(schools, mondays) AS p(school_id, monday)
    ),
    covering AS MATERIALIZED (
        SELECT w.monday, r.id, r.created_at FROM (SELECT DISTINCT monday FROM pairs) AS w
        JOIN collector_collectionrun r ON r.date_from <= w.monday AND r.date_to >= w.monday + 4
    )
    INSERT INTO collector_latestunit ({COLUMNS})
    SELECT DISTINCT ON (p.monday, p.school_id)
           p.monday, p.school_id, u.id, u.status, c.id, c.created_at
    FROM pairs p JOIN covering c ON c.monday = p.monday
    JOIN collector_schoolrun u ON u.run_id = c.id AND u.school_id = p.school_id
    WHERE u.status <> 'cancelled'
    ORDER BY p.monday, p.school_id, c.created_at DESC, c.id DESC
    {ON_CONFLICT};
$$;

CREATE FUNCTION collector_latest_unit_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {UNITS_UPSERT.format(source="new_units", only="")};
    RETURN NULL;
END $$;

CREATE FUNCTION collector_latest_unit_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    schools bigint[];
    mondays date[];
BEGIN
    UPDATE collector_latestunit l SET status = n.status FROM new_units n
    WHERE l.unit_id = n.id AND l.status <> n.status AND n.status <> 'cancelled';
    -- A unit cancelled leaves its school-weeks to the next newest unit, if any.
    WITH gone AS (
        DELETE FROM collector_latestunit l USING new_units n
        WHERE l.unit_id = n.id AND n.status = 'cancelled'
        RETURNING l.school_id, l.monday
    )
    SELECT array_agg(school_id), array_agg(monday) INTO schools, mondays FROM gone;
    IF schools IS NOT NULL THEN
        PERFORM collector_latest_unit_fill(schools, mondays);
    END IF;
    -- One no longer cancelled (the ledger never does it) may be the newest again.
    {
    UNITS_UPSERT.format(
        source="new_units",
        only="AND n.id IN (SELECT id FROM old_units WHERE status = 'cancelled')",
    )
};
    RETURN NULL;
END $$;

CREATE FUNCTION collector_latest_unit_run_moved() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    schools bigint[];
    mondays date[];
BEGIN
    SELECT array_agg(u.school_id), array_agg(w.monday) INTO schools, mondays
    FROM collector_schoolrun u,
         (SELECT collector_school_weeks(OLD.date_from, OLD.date_to)
          UNION SELECT collector_school_weeks(NEW.date_from, NEW.date_to)) AS w(monday)
    WHERE u.run_id = NEW.id;
    DELETE FROM collector_latestunit l USING unnest(schools, mondays) AS p(school_id, monday)
    WHERE l.school_id = p.school_id AND l.monday = p.monday;
    PERFORM collector_latest_unit_fill(schools, mondays);
    RETURN NULL;
END $$;

CREATE TRIGGER collector_latest_unit_inserted AFTER INSERT ON collector_schoolrun
    REFERENCING NEW TABLE AS new_units
    FOR EACH STATEMENT EXECUTE FUNCTION collector_latest_unit_inserted();
CREATE TRIGGER collector_latest_unit_updated AFTER UPDATE ON collector_schoolrun
    REFERENCING OLD TABLE AS old_units NEW TABLE AS new_units
    FOR EACH STATEMENT EXECUTE FUNCTION collector_latest_unit_updated();
CREATE TRIGGER collector_latest_unit_run_moved
    AFTER UPDATE OF created_at, date_from, date_to ON collector_collectionrun
    FOR EACH ROW WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
        OR OLD.date_from IS DISTINCT FROM NEW.date_from
        OR OLD.date_to IS DISTINCT FROM NEW.date_to)
    EXECUTE FUNCTION collector_latest_unit_run_moved();

-- The ledger already held.
{UNITS_UPSERT.format(source="collector_schoolrun", only="")};
"""

DROP = """
DROP TRIGGER collector_latest_unit_run_moved ON collector_collectionrun;
DROP TRIGGER collector_latest_unit_updated ON collector_schoolrun;
DROP TRIGGER collector_latest_unit_inserted ON collector_schoolrun;
DROP FUNCTION collector_latest_unit_run_moved(), collector_latest_unit_updated(),
    collector_latest_unit_inserted(), collector_latest_unit_fill(bigint[], date[]),
    collector_school_weeks(date, date);
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)  # no parameters: "%" is the modulo here

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0013_latest_unit"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
