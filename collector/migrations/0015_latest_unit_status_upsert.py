"""A unit's status change writes its school-weeks by their unique index, not by ``unit_id``.

0014 copied a new status only into the rows that already named the unit. A unit cancelled at
the same moment as an older unit of its school changed status could then leave the older
unit's old status behind: the cancel gave the week to the older unit as its snapshot saw it,
while the status change found no row of its unit to write (the row still named the newer
unit, or the cancel's row was not committed yet), and nothing wrote the new status after.
Now a status change upserts each school-week its unit's run holds, newer or equal runs
winning: the insert waits on the cancel's row (the unique index) or locks the row the cancel
is about to delete, so whichever commits second writes what the first committed. Both lock
a school's weeks in the table's index order, so they never wait for each other in a circle.
"""

import importlib

from django.db import migrations

LATEST = importlib.import_module("collector.migrations.0014_latest_unit_triggers")

UPDATED = f"""
CREATE OR REPLACE FUNCTION collector_latest_unit_updated() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    schools bigint[];
    mondays date[];
BEGIN
    -- A unit cancelled leaves its school-weeks to the next newest unit, if any. Its rows are
    -- locked first in the index's order, the order in which the upsert below (of another
    -- transaction) takes them: in the order the delete read them, a cancel could hold one
    -- week of a school while waiting for the other, held by that upsert waiting for the first.
    PERFORM 1 FROM collector_latestunit l JOIN new_units n ON l.unit_id = n.id
    WHERE n.status = 'cancelled' ORDER BY l.monday, l.school_id FOR UPDATE OF l;
    WITH gone AS (
        DELETE FROM collector_latestunit l USING new_units n
        WHERE l.unit_id = n.id AND n.status = 'cancelled'
        RETURNING l.school_id, l.monday
    )
    SELECT array_agg(school_id), array_agg(monday) INTO schools, mondays FROM gone;
    IF schools IS NOT NULL THEN
        PERFORM collector_latest_unit_fill(schools, mondays);
    END IF;
    -- A unit whose status changed (no longer cancelled included) takes each school-week of
    -- its run where it is the newest: its own row gets the status, a missing row is made.
    INSERT INTO collector_latestunit ({LATEST.COLUMNS})
    SELECT DISTINCT ON (w.monday, n.school_id)
           w.monday, n.school_id, n.id, n.status, r.id, r.created_at
    FROM new_units n
    JOIN old_units o ON o.id = n.id
    JOIN collector_collectionrun r ON r.id = n.run_id,
         LATERAL collector_school_weeks(r.date_from, r.date_to) AS w(monday)
    WHERE n.status <> 'cancelled' AND o.status IS DISTINCT FROM n.status
    ORDER BY w.monday, n.school_id, r.created_at DESC, r.id DESC
    ON CONFLICT (monday, school_id) DO UPDATE
        SET unit_id = EXCLUDED.unit_id, status = EXCLUDED.status, run_id = EXCLUDED.run_id,
            run_created_at = EXCLUDED.run_created_at
        WHERE (collector_latestunit.run_created_at, collector_latestunit.run_id)
            <= (EXCLUDED.run_created_at, EXCLUDED.run_id);
    RETURN NULL;
END $$;
"""

# No JIT for the triggers and their functions: PostgreSQL estimates a join of transition
# tables without statistics, and generate_series (inlined from collector_school_weeks) at
# 1,000 rows, so a bulk write of a few thousand units was estimated at millions of rows and
# JIT-compiled its statements on every execution (0.2-1 s each, for 20 ms of work). The SET
# also keeps collector_school_weeks from being inlined, so the planner takes its ROWS 3.
FUNCTIONS = (
    "collector_latest_unit_inserted()",
    "collector_latest_unit_updated()",
    "collector_latest_unit_run_moved()",
    "collector_latest_unit_fill(bigint[], date[])",
    "collector_school_weeks(date, date)",
)
NO_JIT = "".join(f"ALTER FUNCTION {each} SET jit = off;\n" for each in FUNCTIONS)
JIT_AGAIN = "".join(f"ALTER FUNCTION {each} RESET jit;\n" for each in FUNCTIONS)

# 0014's function, as it was.
PREVIOUS = LATEST.CREATE[
    LATEST.CREATE.index("CREATE FUNCTION collector_latest_unit_updated()") : LATEST.CREATE.index(
        "CREATE FUNCTION collector_latest_unit_run_moved()"
    )
].replace("CREATE FUNCTION", "CREATE OR REPLACE FUNCTION", 1)


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0014_latest_unit_triggers"),
    ]

    operations = [
        migrations.RunPython(
            LATEST._on_postgresql(UPDATED + NO_JIT),
            LATEST._on_postgresql(PREVIOUS + JIT_AGAIN),
        ),
    ]
