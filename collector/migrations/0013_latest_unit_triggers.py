"""The triggers that keep collector_latestunit (0012: its unique index must exist first)."""

from django.db import migrations

# PostgreSQL keeps collector_latestunit (collector.ledger.LatestUnit) in the same statement as
# the ledger write that changes it, whatever code wrote it (bulk updates included): statement
# triggers with transition tables, so a national run's 12,500 units cost one set-based insert.
# Elsewhere the table stays empty and the console works the latest units out on each read.
LATEST_SELECT = """
    SELECT DISTINCT ON (w.monday, n.school_id) w.monday, n.school_id, n.id, n.status
    FROM {source} n
    JOIN collector_collectionrun r ON r.id = n.run_id,
         LATERAL collector_school_weeks(r.date_from, r.date_to) AS w(monday)
    WHERE n.status <> 'cancelled'
    ORDER BY w.monday, n.school_id, r.created_at DESC, r.id DESC
"""
UPSERT = """
    INSERT INTO collector_latestunit (monday, school_id, unit_id, status) {select}
    ON CONFLICT (monday, school_id) DO UPDATE
        SET unit_id = EXCLUDED.unit_id, status = EXCLUDED.status
        WHERE collector_newer_unit(EXCLUDED.unit_id, collector_latestunit.unit_id)
"""

CREATE = f"""
-- The school weeks (Mondays) a window holds wholly, Monday to Friday:
-- collector.completeness.school_weeks in SQL.
CREATE FUNCTION collector_school_weeks(date_from date, date_to date) RETURNS SETOF date
LANGUAGE sql IMMUTABLE AS $$
    SELECT d::date FROM generate_series(
        (date_from + (8 - extract(isodow FROM date_from)::int) % 7)::timestamp,
        (date_to - 4)::timestamp, interval '7 days') AS d
$$;

-- Whether unit a's run is newer than unit b's (created later; the higher id on a tie).
CREATE FUNCTION collector_newer_unit(a bigint, b bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT (ra.created_at, ra.id) > (rb.created_at, rb.id)
    FROM collector_schoolrun ua JOIN collector_collectionrun ra ON ra.id = ua.run_id,
         collector_schoolrun ub JOIN collector_collectionrun rb ON rb.id = ub.run_id
    WHERE ua.id = a AND ub.id = b
$$;

-- Works out again the latest unit of each (school, Monday) pair given.
CREATE FUNCTION collector_latest_unit_recompute(schools bigint[], mondays date[]) RETURNS void
LANGUAGE sql AS $$
    DELETE FROM collector_latestunit l USING unnest(schools, mondays) AS p(school_id, monday)
    WHERE l.school_id = p.school_id AND l.monday = p.monday;
    INSERT INTO collector_latestunit (monday, school_id, unit_id, status)
    SELECT DISTINCT ON (p.monday, p.school_id) p.monday, p.school_id, u.id, u.status
    FROM unnest(schools, mondays) AS p(school_id, monday)
    JOIN collector_schoolrun u ON u.school_id = p.school_id AND u.status <> 'cancelled'
    JOIN collector_collectionrun r ON r.id = u.run_id
         AND r.date_from <= p.monday AND r.date_to >= p.monday + 4
    ORDER BY p.monday, p.school_id, r.created_at DESC, r.id DESC
    ON CONFLICT (monday, school_id) DO UPDATE
        SET unit_id = EXCLUDED.unit_id, status = EXCLUDED.status
        WHERE collector_newer_unit(EXCLUDED.unit_id, collector_latestunit.unit_id);
$$;

CREATE FUNCTION collector_latest_unit_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    {UPSERT.format(select=LATEST_SELECT.format(source="new_units"))};
    RETURN NULL;
END $$;

CREATE FUNCTION collector_latest_unit_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE collector_latestunit l SET status = n.status FROM new_units n
    WHERE l.unit_id = n.id AND l.status <> n.status AND n.status <> 'cancelled';
    -- A unit cancelled (or, never by the ledger, no longer cancelled): an older unit may be
    -- its school's latest again in its run's weeks.
    PERFORM collector_latest_unit_recompute(array_agg(n.school_id), array_agg(w.monday))
    FROM new_units n JOIN old_units o ON o.id = n.id
    JOIN collector_collectionrun r ON r.id = n.run_id,
         LATERAL collector_school_weeks(r.date_from, r.date_to) AS w(monday)
    WHERE (n.status = 'cancelled') <> (o.status = 'cancelled')
    HAVING count(*) > 0;
    RETURN NULL;
END $$;

CREATE FUNCTION collector_latest_unit_run_moved() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM collector_latest_unit_recompute(array_agg(u.school_id), array_agg(w.monday))
    FROM collector_schoolrun u,
         (SELECT collector_school_weeks(OLD.date_from, OLD.date_to)
          UNION SELECT collector_school_weeks(NEW.date_from, NEW.date_to)) AS w(monday)
    WHERE u.run_id = NEW.id
    HAVING count(*) > 0;
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
{UPSERT.format(select=LATEST_SELECT.format(source="collector_schoolrun"))};
"""

DROP = """
DROP TRIGGER collector_latest_unit_run_moved ON collector_collectionrun;
DROP TRIGGER collector_latest_unit_updated ON collector_schoolrun;
DROP TRIGGER collector_latest_unit_inserted ON collector_schoolrun;
DROP FUNCTION collector_latest_unit_run_moved(), collector_latest_unit_updated(),
    collector_latest_unit_inserted(), collector_latest_unit_recompute(bigint[], date[]),
    collector_newer_unit(bigint, bigint), collector_school_weeks(date, date);
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, None)  # no parameters: "%" is the modulo here

    return run


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0012_latest_unit"),
    ]

    operations = [
        migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP)),
    ]
