<?php
// An ordinary connection per request (pg_connect): PGAPPNAME tags it with this request's id.
require __DIR__ . '/truth.php';
AccTruth::begin('ordinary', 'ordinary');
$conn = pg_connect((string) getenv('BV_ACC_CONNINFO'), PGSQL_CONNECT_FORCE_NEW);
foreach (AccTruth::durations() as $i => $s) {
    AccTruth::pg($conn, str_replace('$1', (string) $s, acc_step_sql($i, '$1')));
    AccTruth::gap();
}
pg_close($conn);
